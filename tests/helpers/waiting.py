"""Polling helper for tests that wait on background work (workers, schedulers, receivers)."""

from __future__ import annotations

import time
from collections.abc import Callable

# How long a wait takes before it fails, unless a test gives its own bound: generous, since `make test` runs
# four processes on two cores and a busy CI machine may be slower still. Only a failing wait takes this long.
WAIT_SECONDS = 60.0


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_SECONDS, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{message} not met within {timeout}s")
