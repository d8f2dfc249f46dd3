"""Benchmark of the CSV engine: parse+validate throughput and memory, and result-file writing.

    .venv/bin/python bench/csv_engine.py [--rows 100000] [--invalid-ratio 0.05] [--seed 0] [--repeat 3]

Generates a seeded realistic file of --rows rows (and one of 10,000 rows, so memory flatness shows),
then measures each phase in a fresh child process, so that one measurement's allocations never
inflate the next one's figures:

- rows/s: wall time on one core, best of --repeat runs, without tracemalloc (it slows Python down);
- tracemalloc peak: the most Python-heap memory allocated at once during the phase, measured in a
  separate run (exact for Python objects, blind to memory the C runtime allocates on its own);
- ru_maxrss delta: the child's peak resident set size (getrusage) minus its resident size just before
  the phase (/proc/self/statm). Whole-process and page-granular: it includes interpreter and
  allocator overhead, and reads 0 when the phase never pushes the process above the peak it had
  already reached while importing modules (the absolute figures are printed next to it).

"write" is parse+validate+write of the result file (as the service does it); the write-only cost is
that minus the parse+validate time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bulkimport.validation import CsvImport, row_reason  # noqa: E402
from devtools.sample import write_sample_csv  # noqa: E402
from metriport_bulk.lib.csvio import ResultCsvWriter  # noqa: E402

SMALL_ROWS = 10_000


def _maxrss_bytes() -> int:
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return _maxrss_bytes()


def _parse(path: str) -> tuple[int, int]:
    valid = invalid = 0
    with open(path, "rb") as stream:
        for result in CsvImport(stream).rows():
            if result.errors:
                invalid += 1
            else:
                valid += 1
    return valid, invalid


def _parse_and_write(path: str, out_path: str) -> tuple[int, int]:
    valid = invalid = 0
    with open(path, "rb") as stream, open(out_path, "wb") as out:
        imported = CsvImport(stream)
        writer = ResultCsvWriter(out, imported.header)
        for result in imported.rows():
            if result.errors:
                invalid += 1
                writer.write(
                    result.raw,
                    metriport_id=None,
                    status="failed",
                    reason=row_reason(result.errors),
                    action="",
                )
            else:
                valid += 1
                writer.write(result.raw, metriport_id=None, status="succeeded", reason="", action="validated")
    return valid, invalid


def _child(phase: str, path: str, out_path: str) -> None:
    """Run one phase and print its figures as JSON (runs in a fresh process)."""
    work = _parse if phase.startswith("parse") else lambda p: _parse_and_write(p, out_path)
    traced = phase.endswith("-mem")
    rss_before = _current_rss_bytes()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    valid, invalid = work(path)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if traced else None
    if traced:
        tracemalloc.stop()
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "valid": valid,
                "invalid": invalid,
                "tracemalloc_peak": peak,
                "rss_before": rss_before,
                "maxrss": _maxrss_bytes(),
                "maxrss_delta": max(0, _maxrss_bytes() - rss_before),
            }
        )
    )


def _run_child(phase: str, path: Path, out_path: Path) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", phase, str(path), str(out_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _mib(size: float) -> str:
    return f"{size / (1024 * 1024):6.1f} MiB"


def _bench(rows: int, directory: Path, *, invalid_ratio: float, seed: int, repeat: int) -> None:
    path = directory / f"patients-{rows}.csv"
    out_path = directory / f"result-{rows}.csv"
    started = time.perf_counter()
    with open(path, "wb") as out:
        write_sample_csv(out, rows, invalid_ratio=invalid_ratio, seed=seed)
    generated = time.perf_counter() - started
    size = path.stat().st_size

    parse = min((_run_child("parse", path, out_path) for _ in range(repeat)), key=lambda r: r["seconds"])
    write = min((_run_child("write", path, out_path) for _ in range(repeat)), key=lambda r: r["seconds"])
    parse_mem = _run_child("parse-mem", path, out_path)
    write_mem = _run_child("write-mem", path, out_path)
    write_only = max(write["seconds"] - parse["seconds"], 1e-9)

    print(f"\n{rows:,} rows, {size / 1e6:.1f} MB input (generated in {generated:.2f} s), seed {seed}")
    print(f"  rows: {parse['valid']:,} valid, {parse['invalid']:,} invalid")
    print(
        f"  parse+validate        {rows / parse['seconds']:>9,.0f} rows/s  ({parse['seconds']:.3f} s, "
        f"{size / parse['seconds'] / 1e6:.0f} MB/s)"
    )
    print(f"  parse+validate+write  {rows / write['seconds']:>9,.0f} rows/s  ({write['seconds']:.3f} s)")
    print(f"  write only (derived)  {rows / write_only:>9,.0f} rows/s  ({write_only:.3f} s)")
    for label, timed, traced in (
        ("parse+validate", parse, parse_mem),
        ("parse+validate+write", write, write_mem),
    ):
        print(
            f"  memory, {label + ':':22} tracemalloc peak {_mib(traced['tracemalloc_peak'])}; "
            f"ru_maxrss delta {_mib(timed['maxrss_delta'])} "
            f"(process peak RSS {_mib(timed['maxrss']).strip()}, "
            f"RSS before the phase {_mib(timed['rss_before']).strip()})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--invalid-ratio", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per phase; the best is reported")
    parser.add_argument("--child", nargs=3, metavar=("PHASE", "CSV", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return

    print(f"Python {sys.version.split()[0]} on {sys.platform}; one core; each phase in a fresh process")
    print("tracemalloc peak = Python-heap peak (separate run); ru_maxrss delta = process peak RSS growth")
    with tempfile.TemporaryDirectory(prefix="csv-engine-bench-") as directory:
        for rows in sorted({SMALL_ROWS, args.rows}):
            _bench(rows, Path(directory), invalid_ratio=args.invalid_ratio, seed=args.seed, repeat=args.repeat)


if __name__ == "__main__":
    main()
