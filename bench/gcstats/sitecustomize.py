"""Loaded by every Python process started with this folder first on PYTHONPATH (`bench/pipeline.py --gc`):
appends one line per garbage collection, `<generation> <milliseconds>`, to a file named by the process's id
in BENCH_GC_DIR. A forked process keeps the callback and writes under its own id."""

import gc
import os
import time
from collections.abc import Callable
from typing import Any


def _recorder(directory: str) -> Callable[[str, dict[str, Any]], None]:
    started: list[float] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            with open(os.path.join(directory, str(os.getpid())), "a") as out:
                out.write(f"{info['generation']} {(time.perf_counter() - started[0]) * 1000:.3f}\n")

    return record


if os.environ.get("BENCH_GC_DIR"):
    gc.callbacks.append(_recorder(os.environ["BENCH_GC_DIR"]))
