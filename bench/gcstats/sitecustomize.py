"""Loaded by every Python process started with this folder first on PYTHONPATH (`bench/pipeline.py --gc`):
appends one line per garbage collection, `<generation> <milliseconds>`, to a file named by the process's id
in BENCH_GC_DIR. A forked process keeps the callback and writes under its own id."""

import gc
import os
import time

_DIR = os.environ.get("BENCH_GC_DIR")
_started: list[float] = []


def _record(phase: str, info: dict) -> None:
    if phase == "start":
        _started[:] = [time.perf_counter()]
    elif _started:
        with open(os.path.join(_DIR, str(os.getpid())), "a") as out:
            out.write(f"{info['generation']} {(time.perf_counter() - _started[0]) * 1000:.3f}\n")


if _DIR:
    gc.callbacks.append(_record)
