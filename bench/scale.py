"""Time and memory against rows (issue 24): runs bench/pipeline.py once per size, one after the other on the
same machine, and prints each phase (noticed -> completed), the peak RSS of each worker process and the ratio
of the largest size to the smallest (linear = the ratio of the rows). Raises BULK_MAX_ROWS/BULK_MAX_FILE_BYTES
to their supported ceilings (1,000,000 rows / 500 MB) for the run.

Usage: .venv/bin/python bench/scale.py [--rows 100000 1000000] [--processes 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHASES = {
    "parse + validate": r"parse \+ validate:\s+([\d.]+) s",
    "apply (chunks)": r"apply \(chunks\):\s+([\d.]+) s",
    "every Document Query ended": r"medical data \(every Document Query ended\):\s+([\d.]+) s",
    "finish (result CSV)": r"finish \(result CSV\):\s+([\d.]+) s",
    "noticed -> completed": r"end to end \(noticed -> completed\):\s+([\d.]+) s",
}


def run(rows: int, processes: int, threads: int) -> dict[str, float]:
    env = {**os.environ, "BULK_MAX_ROWS": "1000000", "BULK_MAX_FILE_BYTES": str(500 * 1024 * 1024)}
    command = [sys.executable, "bench/pipeline.py", "--rows", str(rows)]
    command += ["--processes", str(processes), "--threads", str(threads)]
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    print(out, flush=True)
    figures = {name: float(re.search(pattern, out).group(1)) for name, pattern in PHASES.items()}  # type: ignore[union-attr]
    rss = [float(mb) for mb in re.findall(r"peak RSS (\d+) MB", out)]
    figures["peak worker RSS (MB)"] = max(rss)
    figures["lowest worker RSS (MB)"] = min(rss)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    results = {rows: run(rows, args.processes, args.threads) for rows in args.rows}
    small, large = min(results), max(results)
    header = " | ".join(f"{rows:,} rows" for rows in results)
    print(f"| phase | {header} | ratio {large:,}/{small:,} (linear = {large / small:g}x) |")
    print("|---|" + "---|" * (len(results) + 1))
    for name in results[small]:
        cells = " | ".join(f"{figures[name]:.2f}" for figures in results.values())
        print(f"| {name} | {cells} | {results[large][name] / results[small][name]:.2f}x |")


if __name__ == "__main__":
    main()
