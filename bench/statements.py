"""Where the database's time goes, statement by statement, at each size (issue 24): runs bench/pipeline.py
once per size on a PostgreSQL server of its own with bench/scale.py's tuned settings and
`pg_stat_statements` (`track=all`: the foreign-key checks' own queries count), and prints each kind of
statement's seconds of database time and calls per size, with the ratio of the largest size to the
smallest and what it costs beyond linear (the ones that grow faster than the rows come first). Then the
server's own counts per size (`pg_stat_wal`, `pg_stat_bgwriter`, `track_io_timing`): the WAL written and
its full-page images, the WAL syncs and their time, and the pages written out by the statements themselves
(evicting a dirty buffer to make room), by the background writer and by checkpoints. A size whose tables
outgrow shared buffers writes pages during the run that a smaller one writes only after it.

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
from scale import TUNED, pipeline_env, run

from devtools.postgres import PostgresServer

SETTINGS = {
    **TUNED,
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.max": "10000",
    "track_io_timing": "on",
    "track_wal_io_timing": "on",
}

# The server's counts of a run: label -> SQL of one value, read after the run (reset before it).
SERVER_COUNTS = {
    "WAL written (MB)": "SELECT wal_bytes / 1e6 FROM pg_stat_wal",
    "full-page images in it": "SELECT wal_fpi FROM pg_stat_wal",
    "WAL writes": "SELECT wal_write FROM pg_stat_wal",
    "WAL syncs": "SELECT wal_sync FROM pg_stat_wal",
    "WAL write + sync time (s)": "SELECT (wal_write_time + wal_sync_time) / 1e3 FROM pg_stat_wal",
    "pages written by the statements (evicting)": "SELECT buffers_backend FROM pg_stat_bgwriter",
    "pages written by the background writer": "SELECT buffers_clean FROM pg_stat_bgwriter",
    "pages written by checkpoints": "SELECT buffers_checkpoint FROM pg_stat_bgwriter",
    "checkpoints (timed + requested)": "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter",
    "pages read from the OS by the statements": "SELECT sum(shared_blks_read) FROM pg_stat_statements",
    "statements' read + write time (s)": "SELECT sum(blk_read_time + blk_write_time) / 1e3 FROM pg_stat_statements",
}


def statement_kind(query: str) -> str:
    """A statement's text with its parameters, literals lists and per-run names taken out, cut short."""
    text = " ".join(query.split())
    text = re.sub(r"\$\d+", "$", text)
    text = re.sub(r'"mb_[a-z]+_[0-9a-f]+"', '"mb_…"', text)
    return text[:110]


def _one_value(conn, sql: str) -> float:
    row = conn.execute(sql).fetchone()
    return float(row[0] or 0) if row else 0.0


def profile(server: PostgresServer, rows: int) -> tuple[dict[str, tuple[float, int]], dict[str, float]]:
    """Kind -> (seconds of execution, calls) of one bench/pipeline.py run of `rows` rows, and the server's
    counts of it (SERVER_COUNTS)."""
    import psycopg

    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("SELECT pg_stat_reset_shared('wal')")
        conn.execute("SELECT pg_stat_reset_shared('bgwriter')")
    command = [sys.executable, "bench/pipeline.py", "--rows", str(rows)]
    env = pipeline_env(server.admin_url)
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    print(out, flush=True)
    kinds: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    with psycopg.connect(server.admin_url, autocommit=True) as conn:
        found = conn.execute("SELECT query, toplevel, total_exec_time, calls FROM pg_stat_statements").fetchall()
        counts = {label: _one_value(conn, sql) for label, sql in SERVER_COUNTS.items()}
    for query, toplevel, milliseconds, calls in found:
        if not toplevel and query.lstrip().upper().startswith("COPY"):
            continue  # a COPY's own query, counted again below its top-level COPY
        kind = kinds[statement_kind(query)]
        kind[0] += milliseconds / 1000
        kind[1] += calls
    return {kind: (seconds, int(calls)) for kind, (seconds, calls) in kinds.items()}, counts


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
        run(10_000, 2, 1, pg_admin_url=server.admin_url)  # warm-up, not counted (bench/scale.py's --warm-up)
        profiles = {rows: profile(server, rows) for rows in sizes}
    finally:
        server.stop()
        server.remove()

    results = {rows: statements for rows, (statements, _) in profiles.items()}
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

    print(f"\n| the server's counts | {header} | ratio |")
    print("|---|" + "---|" * len(sizes) + "---|")
    for label in SERVER_COUNTS:
        values = [profiles[rows][1][label] for rows in sizes]
        ratio = f"{values[-1] / values[0]:.1f}x" if values[0] else "-"
        shown = " | ".join(f"{value:,.2f}" if value % 1 else f"{value:,.0f}" for value in values)
        print(f"| {label} | {shown} | {ratio} |")


if __name__ == "__main__":
    main()
