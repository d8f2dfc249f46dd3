"""Time and memory against rows (issue 24): runs bench/pipeline.py once per size, one after the other on the
same machine, then each smaller size once more (`--no-bracket`: not), and prints each phase (noticed ->
completed; a size run twice counts as the mean of its two runs, each also printed), the peak RSS of each
worker process and the ratio of the largest size to each smaller one (linear = the ratio of the rows). Raises
BULK_MAX_ROWS/BULK_MAX_FILE_BYTES to their supported ceilings (1,000,000 rows / 500 MB) for the run.

`--plot FILE.png` also draws noticed -> completed and the peak worker RSS against rows (log-scaled rows, a
dashed line for linear time through the size nearest 100,000); the figures go to FILE.json beside it, and
`--replot FILE.json` draws them again without measuring.

`--tuned-postgres` runs on a PostgreSQL server of its own with production memory and WAL settings instead of
the machine's shared server with PostgreSQL's defaults (devtools.postgres, initdb into a temporary directory).

A warm-up run of 10,000 rows comes first and is not counted (`--warm-up 0`: none). The first run on a
fresh server, or after a fresh install (Python compiling its modules), was up to half again as slow as the
next, which made the smaller size's mean slower and the ratio look better than it is.

Usage: .venv/bin/python bench/scale.py [--rows 10000 100000 1000000] [--processes 2] [--threads 1] [--plot f.png]
       [--tuned-postgres] [--no-bracket] [--warm-up 10000] [--tenths]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from _stack import ROOT  # also puts the project on sys.path

from devtools.postgres import PostgresServer

# What a production server of million-row imports would set; the shared server keeps PostgreSQL's defaults
# (128 MB of shared buffers, a checkpoint every 1 GB of WAL).
TUNED = {
    "shared_buffers": "1GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
}

PHASES = {
    "parse + validate": r"parse \+ validate:\s+([\d.]+) s",
    "apply (chunks)": r"apply \(chunks\):\s+([\d.]+) s",
    "every Document Query ended": r"medical data \(every Document Query ended\):\s+([\d.]+) s",
    "finish (result CSV)": r"finish \(result CSV\):\s+([\d.]+) s",
    "noticed -> completed": r"end to end \(noticed -> completed\):\s+([\d.]+) s",
}


def pipeline_env(pg_admin_url: str | None = None) -> dict[str, str]:
    """bench/pipeline.py's environment: the supported ceilings (1,000,000 rows, 500 MB) and the server to use."""
    env = {**os.environ, "BULK_MAX_ROWS": "1000000", "BULK_MAX_FILE_BYTES": str(500 * 1024 * 1024)}
    if pg_admin_url:
        env["BENCH_PG_ADMIN_URL"] = pg_admin_url
    return env


def run(
    rows: int, processes: int, threads: int, *, pg_admin_url: str | None = None, tenths: bool = False
) -> dict[str, float]:
    env = pipeline_env(pg_admin_url)
    command = [sys.executable, "bench/pipeline.py", "--rows", str(rows)]
    command += ["--processes", str(processes), "--threads", str(threads), *(["--tenths"] if tenths else [])]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    print(out, flush=True)
    figures = {name: float(re.search(pattern, out).group(1)) for name, pattern in PHASES.items()}  # type: ignore[union-attr]
    rss = [float(mb) for mb in re.findall(r"peak RSS (\d+) MB", out)]
    figures["peak worker RSS (MB)"] = max(rss)
    figures["lowest worker RSS (MB)"] = min(rss)
    return figures


def combined(runs: list[dict[str, float]]) -> dict[str, float]:
    """One size's runs as one: the mean of each phase, the highest peak RSS and the lowest one."""
    figures = {name: sum(run[name] for run in runs) / len(runs) for name in runs[0]}
    figures["peak worker RSS (MB)"] = max(run["peak worker RSS (MB)"] for run in runs)
    figures["lowest worker RSS (MB)"] = min(run["lowest worker RSS (MB)"] for run in runs)
    return figures


def plot(results: dict[int, dict[str, float]], path: Path) -> None:
    """Noticed -> completed (with linear growth dashed) and the peak worker RSS,
    against rows, side by side (a PNG, as bench/compare.py draws its own)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    sizes = sorted(results)
    seconds = [results[rows]["noticed -> completed"] for rows in sizes]
    figure, (time_axes, memory_axes) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120)
    time_axes.plot(sizes, seconds, "o-", label="noticed -> completed, medical data included")
    # Linear growth through the size nearest 100,000 (a 10,000-row run is mostly fixed costs: polls, waits).
    base = min(range(len(sizes)), key=lambda index: abs(sizes[index] - 100_000))
    linear = [seconds[base] * rows / sizes[base] for rows in sizes]
    time_axes.plot(sizes, linear, "--", color="grey", label=f"linear through {sizes[base]:,} rows")
    time_axes.set_ylabel("seconds")
    memory_axes.plot(sizes, [results[rows]["peak worker RSS (MB)"] for rows in sizes], "o-", label="highest")
    memory_axes.plot(sizes, [results[rows]["lowest worker RSS (MB)"] for rows in sizes], "s-", label="lowest")
    memory_axes.set_ylabel("peak RSS of a worker process (MB)")
    memory_axes.set_ylim(bottom=0)
    for axes in (time_axes, memory_axes):
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
        axes.set_xlabel("rows in the file (log scale)")
        axes.grid(True, alpha=0.3)
        axes.legend()
    figure.suptitle("Bulk import: time and memory against rows (2 cores)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot", type=Path, help="write a PNG of time and memory against rows (and its JSON)")
    parser.add_argument(
        "--tuned-postgres",
        action="store_true",
        help="run on a PostgreSQL server of its own with production memory and WAL settings (TUNED)",
    )
    parser.add_argument(
        "--pg-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --tuned-postgres: a server setting instead of TUNED's (e.g. shared_buffers=4GB), repeatable",
    )
    parser.add_argument(
        "--no-bracket",
        dest="bracket",
        action="store_false",
        help="run each size once (by default the smaller sizes run again after the largest, and count as their mean)",
    )
    parser.add_argument(
        "--warm-up",
        type=int,
        default=10_000,
        metavar="ROWS",
        help="one run of this many rows first, not counted (0: none): a first run on a fresh server, or after "
        "a fresh install, pays for its cold caches",
    )
    parser.add_argument(
        "--tenths", action="store_true", help="print how long each tenth of the chunks and queries took (pipeline.py)"
    )
    parser.add_argument("--replot", type=Path, help="draw the PNG again from a JSON an earlier run wrote")
    args = parser.parse_args()
    if args.replot:
        plot(
            {int(rows): figures for rows, figures in json.loads(args.replot.read_text()).items()},
            args.replot.with_suffix(".png"),
        )
        return
    tuned = {**TUNED, **dict(setting.split("=", 1) for setting in args.pg_setting)}
    server = PostgresServer(tuned).start() if args.tuned_postgres else None
    if server:
        print(f"own PostgreSQL with {tuned}", flush=True)
    large = max(args.rows)
    # The smaller sizes again after the largest (unless --no-bracket): a 100k run lasts half a minute and the
    # machine drifts by ±15% within minutes, so one run each side of the million's five minutes brackets it.
    order = [*args.rows, *(rows for rows in args.rows if rows != large and args.bracket)]
    runs: dict[int, list[dict[str, float]]] = {}
    try:
        pg_admin_url = server.admin_url if server else None
        if args.warm_up:
            print(f"warm-up run of {args.warm_up:,} rows (not counted):", flush=True)
            run(args.warm_up, args.processes, args.threads, pg_admin_url=pg_admin_url)
        for rows in order:
            figures = run(rows, args.processes, args.threads, pg_admin_url=pg_admin_url, tenths=args.tenths)
            runs.setdefault(rows, []).append(figures)
    finally:
        if server:
            server.remove()
    results = {rows: combined(figures) for rows, figures in runs.items()}
    smaller = sorted(rows for rows in results if rows != large)
    header = " | ".join(f"{rows:,} rows" for rows in results)
    ratios = " | ".join(f"ratio {large:,}/{rows:,} (linear = {large / rows:g}x)" for rows in smaller)
    print(f"| phase | {header} | {ratios} |")
    print("|---|" + "---|" * (len(results) + len(smaller)))
    for name in results[large]:
        cells = " | ".join(f"{figures[name]:.2f}" for figures in results.values())
        ratio_cells = " | ".join(f"{results[large][name] / results[rows][name]:.2f}x" for rows in smaller)
        print(f"| {name} | {cells} | {ratio_cells} |")
    for rows in smaller:
        if len(runs[rows]) > 1:
            each = [figures["noticed -> completed"] for figures in runs[rows]]
            seconds = ", ".join(f"{value:.2f} s" for value in each)
            against = ", ".join(f"{runs[large][0]['noticed -> completed'] / value:.2f}x" for value in each)
            print(
                f"{rows:,} rows before and after {large:,}, noticed -> completed: {seconds} (mean above); "
                f"{large:,} against each: {against}"
            )
    if args.plot:
        args.plot.with_suffix(".json").write_text(json.dumps(results, indent=1))
        plot(results, args.plot)


if __name__ == "__main__":
    main()
