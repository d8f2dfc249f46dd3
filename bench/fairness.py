"""Fairness between customers on the real stack (PostgreSQL + Redis + SeaweedFS S3, `manage.py rundramatiq`
worker processes, the scheduler noticing uploads), in one run (issue 13):

  B alone      customer B's 100-row import, nothing else running
  A alone      customer A's 100,000-row import, nothing else running
  A + B        A's import, and B's uploaded 2 s into it

each with fair scheduling (FAIR_SCHEDULING=true, the default) and without (first come, first served), the two
variants alternating run by run (`--repeat`), each in worker processes started for it. Times run from the
upload's PUT to `completed` (medical data included). Targets: B beside A within 2x of B alone; A beside B
within 1.15x of A alone.

`--phases` also prints when each import entered each phase (seconds after its upload), to see which step of B
waited.

Usage: .venv/bin/python bench/fairness.py [--rows 100000] [--small 100] [--processes 2] [--threads 2] [--repeat 1]
       [--phases]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

from _stack import ROOT, running_workers, start_stack


def _upload_and_wait(
    path: str, *, label: str, results: dict[str, float], start_after: float = 0.0, phases: bool = False
) -> None:
    import requests

    from bulkimport import services
    from bulkimport.models import BulkRequest, BulkStatus
    from devtools.tenants import make_tenant

    if start_after:
        time.sleep(start_after)
    tenant = make_tenant(f"{label} {time.monotonic_ns()}")  # a new customer: every run creates its patients
    request = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    url = services.bulk_upload_url(request)
    with open(path, "rb") as body:
        started = time.monotonic()
        assert requests.put(url, data=body, timeout=120).status_code == 200
    deadline = started + 600
    seen: list[tuple[str, float]] = []
    while time.monotonic() < deadline:
        current, phase = BulkRequest.objects.filter(id=request.id).values_list("status", "phase").get()
        if not seen or seen[-1][0] != f"{current}/{phase}":
            seen.append((f"{current}/{phase}", time.monotonic() - started))
        if current in (BulkStatus.COMPLETED, BulkStatus.FAILED):
            assert current == BulkStatus.COMPLETED, f"{label}: {current}"
            results[label] = time.monotonic() - started
            if phases:
                print(f"    {label}: " + ", ".join(f"{state} {seconds:.2f} s" for state, seconds in seen), flush=True)
            return
        time.sleep(0.05)
    raise AssertionError(f"{label}: not completed in 600 s")


def _scenario(name: str, *, big: str, small: str, fair: bool, args, env: dict[str, str]) -> dict[str, float]:
    from django.db import connections

    worker_env = {**env, "FAIR_SCHEDULING": "true" if fair else "false"}
    results: dict[str, float] = {}
    with running_workers(args.processes, args.threads, worker_env):
        if name == "B alone":
            _upload_and_wait(small, label="B", results=results, phases=args.phases)
        elif name == "A alone":
            _upload_and_wait(big, label="A", results=results, phases=args.phases)
        else:

            def run(path: str, label: str, delay: float) -> None:
                try:
                    _upload_and_wait(path, label=label, results=results, start_after=delay, phases=args.phases)
                finally:
                    connections.close_all()

            threads = [
                threading.Thread(target=run, args=(big, "A", 0.0)),
                threading.Thread(target=run, args=(small, "B", args.offset)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000, help="customer A's import")
    parser.add_argument("--small", type=int, default=100, help="customer B's import")
    parser.add_argument("--offset", type=float, default=2.0, help="B's upload, seconds into A's")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="per worker process (2: see README, Sizing)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of both variants, alternating")
    parser.add_argument("--only-fair", action="store_true", help="skip the first-come-first-served variant")
    parser.add_argument("--phases", action="store_true", help="print when each import entered each phase")
    args = parser.parse_args()

    env = start_stack("fairness")
    from devtools.sample import write_sample_csv

    variants = [True] if args.only_fair else [True, False]
    figures: dict[tuple[bool, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        big, small = os.path.join(tmp, "a.csv"), os.path.join(tmp, "b.csv")
        with open(big, "wb") as out:
            write_sample_csv(out, args.rows, invalid_ratio=0.05, seed=42)
        with open(small, "wb") as out:
            write_sample_csv(out, args.small, invalid_ratio=0.05, seed=7)
        print(f"A: {args.rows:,} rows; B: {args.small:,} rows, uploaded {args.offset:.0f} s into A's import")
        print(f"workers: {args.processes} processes x {args.threads} threads; times from upload to completed\n")
        for round_number in range(args.repeat):
            for fair in variants if round_number % 2 == 0 else variants[::-1]:
                for name in ("B alone", "A alone", "A + B"):
                    results = _scenario(name, big=big, small=small, fair=fair, args=args, env=env)
                    for label, seconds in results.items():
                        figures.setdefault((fair, name, label), []).append(seconds)
                    shown = ", ".join(f"{label} {seconds:.2f} s" for label, seconds in sorted(results.items()))
                    print(f"  [{'fair' if fair else 'fifo'}] {name:8}: {shown}", flush=True)

    print()
    for fair in variants:
        med = {key[1:]: statistics.median(values) for key, values in figures.items() if key[0] == fair}
        b_ratio = med[("A + B", "B")] / med[("B alone", "B")]
        a_ratio = med[("A + B", "A")] / med[("A alone", "A")]
        print(
            f"{'fair scheduling' if fair else 'first come, first served'}: "
            f"B alone {med[('B alone', 'B')]:.2f} s, B beside A {med[('A + B', 'B')]:.2f} s ({b_ratio:.2f}x, "
            f"target <= 2x); A alone {med[('A alone', 'A')]:.2f} s, A beside B {med[('A + B', 'A')]:.2f} s "
            f"({a_ratio:.2f}x, target <= 1.15x)"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "bench"))
    main()
