"""Polling helper for tests that wait on background work (workers, schedulers, receivers)."""

from __future__ import annotations

import time
from collections.abc import Callable

from devtools.receiver import WAIT_SECONDS


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_SECONDS, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{message} not met within {timeout}s")
