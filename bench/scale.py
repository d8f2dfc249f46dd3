"""Time and memory against rows (issue 24): runs bench/pipeline.py once per size, one after the other on the
same machine, and prints each phase (noticed -> completed), the peak RSS of each worker process and the ratio
of the largest size to the smallest (linear = the ratio of the rows). Raises BULK_MAX_ROWS/BULK_MAX_FILE_BYTES
to their supported ceilings (1,000,000 rows / 500 MB) for the run.

`--plot FILE.svg` also draws noticed -> completed and the peak worker RSS against rows (log-scaled rows, a
dashed line for linear time through the smallest size).

Usage: .venv/bin/python bench/scale.py [--rows 10000 100000 1000000] [--processes 2] [--threads 1] [--plot f.svg]
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


def plot(results: dict[int, dict[str, float]], path: Path) -> None:
    """An SVG of two panels: seconds (noticed -> completed, with linear growth dashed) and peak RSS, by rows."""
    import math

    sizes = sorted(results)
    width, height, pad = 360, 240, 48
    low, high = math.log10(sizes[0]), math.log10(sizes[-1])

    def x(rows: int) -> float:
        return pad + (math.log10(rows) - low) / ((high - low) or 1) * (width - 2 * pad)

    def panel(left: int, title: str, series: list[tuple[str, list[float], str]]) -> str:
        top = max(max(values) for _, values, _ in series) * 1.1 or 1

        def y(value: float) -> float:
            return height - pad - value / top * (height - 2 * pad)

        parts = [f'<g transform="translate({left},0)"><text x="{pad}" y="20" font-size="13">{title}</text>']
        parts.append(f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#000"/>')
        parts.append(f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#000"/>')
        parts.append(f'<text x="4" y="{pad + 4}" font-size="10">{top:.0f}</text>')
        for rows in sizes:
            parts.append(f'<text x="{x(rows) - 14:.1f}" y="{height - pad + 14}" font-size="10">{rows:,}</text>')
        for name, values, style in series:
            points = " ".join(f"{x(rows):.1f},{y(value):.1f}" for rows, value in zip(sizes, values, strict=True))
            parts.append(f'<polyline points="{points}" fill="none" stroke="#222" {style}/>')
            parts += [
                f'<circle cx="{x(rows):.1f}" cy="{y(value):.1f}" r="3"><title>{name}: {value:.1f}</title></circle>'
                for rows, value in zip(sizes, values, strict=True)
            ]
        return "".join(parts) + f'<text x="{pad}" y="{height - 8}" font-size="10">rows (log scale)</text></g>'

    seconds = [results[rows]["noticed -> completed"] for rows in sizes]
    linear = [seconds[0] * rows / sizes[0] for rows in sizes]
    rss = [results[rows]["peak worker RSS (MB)"] for rows in sizes]
    body = panel(
        0,
        "noticed -> completed (s); dashed: linear",
        [("seconds", seconds, ""), ("linear", linear, 'stroke-dasharray="4 3"')],
    )
    body += panel(width, "peak worker RSS (MB)", [("MB", rss, "")])
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * width}" height="{height}" '
        f'font-family="sans-serif">{body}</svg>\n'
    )
    print(f"plot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plot", type=Path, help="write an SVG of time and memory against rows")
    args = parser.parse_args()
    results = {rows: run(rows, args.processes, args.threads) for rows in args.rows}
    small, large = min(results), max(results)
    header = " | ".join(f"{rows:,} rows" for rows in results)
    print(f"| phase | {header} | ratio {large:,}/{small:,} (linear = {large / small:g}x) |")
    print("|---|" + "---|" * (len(results) + 1))
    for name in results[small]:
        cells = " | ".join(f"{figures[name]:.2f}" for figures in results.values())
        print(f"| {name} | {cells} | {results[large][name] / results[small][name]:.2f}x |")
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
