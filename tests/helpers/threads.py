"""Threads that use the database in a test (racing confirmations, a cancel beside a running chunk)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connections


def db_thread(target: Callable[..., object], *args, **kwargs) -> threading.Thread:
    """A thread running `target` on database connections of its own, closed when it ends: left open, the
    garbage collector closes them later, in whichever test runs then, with a ResourceWarning."""

    def run() -> None:
        try:
            target(*args, **kwargs)
        finally:
            connections.close_all()

    return threading.Thread(target=run, daemon=True)
