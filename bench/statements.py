"""Where the database's time goes, statement by statement, at each size (issue 24): runs bench/pipeline.py
once per size on a PostgreSQL server of its own with bench/scale.py's tuned settings and
`pg_stat_statements` (`track=all`: the foreign-key checks' own queries count), and prints each kind of
statement's seconds of database time and calls per size, with the ratio of the largest size to the
smallest and what it costs beyond linear (the ones that grow faster than the rows come first).

Statements are grouped by their text with parameters and the per-run database name taken out, so the same
statement sent with different literals counts once. The statistics' own cost is in every figure.

Usage: .venv/bin/python bench/statements.py [--rows 100000 1000000] [--top 25]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict

from _stack import ROOT  # also puts the project on sys.path
from scale import TUNED, pipeline_env

from devtools.postgres import PostgresServer

SETTINGS = {
    **TUNED,
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.max": "10000",
}


def statement_kind(query: str) -> str:
    """A statement's text with its parameters, literals lists and per-run names taken out, cut short."""
    text = " ".join(query.split())
    text = re.sub(r"\$\d+", "$", text)
    text = re.sub(r'"mb_[a-z]+_[0-9a-f]+"', '"mb_…"', text)
    return text[:110]


def profile(server: PostgresServer, rows: int) -> dict[str, tuple[float, int]]:
    """Kind -> (seconds of execution, calls) of one bench/pipeline.py run of `rows` rows."""
    import psycopg

    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    command = [sys.executable, "bench/pipeline.py", "--rows", str(rows)]
    env = pipeline_env(server.admin_url)
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    print(out, flush=True)
    kinds: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        found = conn.execute("SELECT query, toplevel, total_exec_time, calls FROM pg_stat_statements").fetchall()
    for query, toplevel, milliseconds, calls in found:
        if not toplevel and query.lstrip().upper().startswith("COPY"):
            continue  # a COPY's own query, counted again below its top-level COPY
        kind = kinds[statement_kind(query)]
        kind[0] += milliseconds / 1000
        kind[1] += calls
    return {kind: (seconds, int(calls)) for kind, (seconds, calls) in kinds.items()}


def main() -> None:
    import psycopg

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    sizes = sorted(args.rows)
    server = PostgresServer(SETTINGS).start()
    try:
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        results = {rows: profile(server, rows) for rows in sizes}
    finally:
        server.stop()
        server.remove()

    small, large = sizes[0], sizes[-1]
    linear = large / small
    print(f"own PostgreSQL with {TUNED}, pg_stat_statements track=all; seconds of database time (calls)")
    totals = [sum(seconds for seconds, _ in results[rows].values()) for rows in sizes]
    by_size = zip(sizes, totals, strict=True)
    print("all statements: " + ", ".join(f"{rows:,} rows {total:.2f} s" for rows, total in by_size))
    print(f"ratio {large:,}/{small:,}: {totals[-1] / totals[0]:.1f}x (linear = {linear:g}x)\n")

    def excess(kind: str) -> float:
        return results[large].get(kind, (0.0, 0))[0] - linear * results[small].get(kind, (0.0, 0))[0]

    kinds = sorted(set().union(*results.values()), key=lambda kind: -abs(excess(kind)))[: args.top]
    header = " | ".join(f"{rows:,} rows" for rows in sizes)
    print(f"| statement | {header} | ratio | beyond linear |")
    print("|---|" + "---|" * len(sizes) + "---|---|")
    for kind in kinds:
        cells = []
        for rows in sizes:
            seconds, calls = results[rows].get(kind, (0.0, 0))
            cells.append(f"{seconds:.2f} s ({calls:,})")
        first, last = results[small].get(kind, (0.0, 0))[0], results[large].get(kind, (0.0, 0))[0]
        ratio = f"{last / first:.1f}x" if first else "-"
        print(f"| `{kind}` | {' | '.join(cells)} | {ratio} | {excess(kind):+.2f} s |")


if __name__ == "__main__":
    main()
