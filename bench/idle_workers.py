"""What idle workers cost at each DRAMATIQ_WORKER_TIMEOUT and DRAMATIQ_BACKGROUND_TIMEOUT: `manage.py
rundramatiq` on Redis with nothing to do (every queue empty), CPU seconds used per minute by the worker
processes and by redis-server, measured over --seconds each. The variants run alternately, --rounds times
(this machine drifts).

On Redis an idle consumer polls its queue with a growing pause, up to its timeout; each worker process has a
consumer per queue and per delay queue. The queues of an import's steps pause up to DRAMATIQ_WORKER_TIMEOUT,
the others (delay queues, the Document Queries' ordinary lane, the webhooks') up to
DRAMATIQ_BACKGROUND_TIMEOUT (metriport_bulk.lib.broker). A shorter
timeout means a message waits less for an idle worker (`bench/pipeline.py` prints those waits) and more polls
while nothing happens.

Usage: .venv/bin/python bench/idle_workers.py [--variants 100/100 100/1000 1000/1000] [--processes 2]
       [--threads 1] [--seconds 30]   (a variant: worker timeout / background timeout, in ms)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from _stack import ROOT, children_of, cpu_seconds, start_stack, start_workers, wait_for_workers


def redis_pids() -> list[int]:
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "redis-server":
                found.append(int(comm.parent.name))
        except OSError:
            continue
    return found


def measure(variant: str, args: argparse.Namespace, env: dict[str, str]) -> tuple[float, float]:
    """(workers' CPU seconds per minute, redis-server's) while idle with these timeouts."""
    worker_ms, background_ms = (int(part) for part in variant.split("/"))
    timeouts = {"DRAMATIQ_WORKER_TIMEOUT": str(worker_ms), "DRAMATIQ_BACKGROUND_TIMEOUT": str(background_ms)}
    workers = start_workers(args.processes, args.threads, {**env, **timeouts})
    try:
        wait_for_workers(workers.pid, args.processes)
        time.sleep(2 * max(worker_ms, background_ms) / 1000)  # every consumer's pause has grown to its timeout
        pids = [workers.pid, *children_of(workers.pid)]
        redis = redis_pids()
        workers_before, redis_before, started = cpu_seconds(pids), cpu_seconds(redis), time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - started
        per_minute = 60 / elapsed
        return (cpu_seconds(pids) - workers_before) * per_minute, (cpu_seconds(redis) - redis_before) * per_minute
    finally:
        os.killpg(workers.pid, signal.SIGKILL)
        workers.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--variants", nargs="+", default=["100/100", "100/1000", "1000/1000"], help="worker/background timeouts, ms"
    )
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    env = start_stack("idle")
    print(f"{args.processes} x {args.threads} idle workers on Redis, {args.seconds:.0f} s per measurement", flush=True)
    print(f"{'worker/background':>20} {'round':>6} {'workers CPU':>16} {'redis-server CPU':>20}")
    for round_number in range(1, args.rounds + 1):
        for variant in args.variants:
            workers, redis = measure(variant, args, env)
            print(f"{variant + ' ms':>20} {round_number:>6} {workers:>10.2f} s/min {redis:>14.2f} s/min", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "bench"))
    main()
