"""Another writer beside an import on the embedded default (SQLite, the in-process worker; issue 24's
fairness, on the laptop default): a thread writes one row every 50 ms, half in a transaction and half in
autocommit, as web requests and admin actions do, while the embedded worker (EMBEDDED_WORKER_THREADS
threads) parses and applies a file; it prints how long those writes waited. Three variants, alternating run
by run, each in a process of its own:

  web first  metriport_bulk.sqlite (the default), each write in a web request (the thread between Django's
             request_started and request_finished, as its handler sends them): the requests' line and the
             worker's take turns
  one line   metriport_bulk.sqlite, the writes not in a request: one line, first come, first served
  stock      Django's own SQLite backend (the writes in requests): every writer polls for SQLite's lock

Usage: .venv/bin/python bench/sqlite_writers.py [--rows 20000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from _stack import ROOT  # also puts the project on sys.path

# variant -> (backend, the writes in web requests)
VARIANTS = {
    "web first": ("metriport_bulk.sqlite", True),
    "one line": ("metriport_bulk.sqlite", False),
    "stock": ("django.db.backends.sqlite3", True),
}
MARKER = "SQLITE_WRITERS "


def child(rows: int, variant: str) -> None:
    """One run in a fresh DATA_DIR (its own SQLite file); prints the figures as one JSON line."""
    data_dir = tempfile.mkdtemp(prefix="bench-sqlite-")
    for name in [key for key in os.environ if key.startswith(("DATABASE_URL", "BROKER_URL", "S3_", "TEST_"))]:
        del os.environ[name]
    os.environ.update(DATA_DIR=data_dir, DJANGO_SETTINGS_MODULE="metriport_bulk.settings")
    from django.conf import settings

    backend, in_request = VARIANTS[variant]
    settings.DATABASES["default"]["ENGINE"] = backend  # before any connection is made
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.signals import request_finished, request_started
    from django.db import connections, transaction

    call_command("migrate", interactive=False, verbosity=0)
    from bulkimport import services
    from bulkimport.models import BulkPhase, BulkRequest
    from devtools.sample import write_sample_csv
    from devtools.tenants import make_tenant
    from metriport_bulk.runtime import start_embedded_worker
    from patients.models import Customer

    path = os.path.join(data_dir, "patients.csv")
    with open(path, "wb") as out:
        write_sample_csv(out, rows, invalid_ratio=0.05, seed=42)
    importing, other = make_tenant("Importer"), make_tenant("Other").customer
    waits: dict[str, list[float]] = {"transaction": [], "autocommit": []}
    done = threading.Event()

    def writer() -> None:
        writes = 0
        while not done.is_set():
            writes += 1
            kind = "transaction" if writes % 2 else "autocommit"
            if in_request:
                request_started.send(sender=None)
            started = time.monotonic()
            if kind == "transaction":
                with transaction.atomic():
                    Customer.objects.filter(id=other.id).update(name=f"Other {writes}")
            else:
                Customer.objects.filter(id=other.id).update(name=f"Other {writes}")
            waits[kind].append(time.monotonic() - started)
            if in_request:
                request_finished.send(sender=None)
            time.sleep(0.05)
        connections.close_all()

    worker = start_embedded_worker()
    request = services.bulk_request_create(customer=importing.customer, facility_id=None, dry_run=False)
    thread = threading.Thread(target=writer)
    started = time.monotonic()
    thread.start()
    with open(path, "rb") as body:
        services.bulk_request_submit_file(request=request, stream=body, size=os.path.getsize(path))
    applied = (BulkPhase.DOCUMENTS, BulkPhase.FINISHING, BulkPhase.DONE)
    while BulkRequest.objects.filter(id=request.id).values_list("phase", flat=True).get() not in applied:
        time.sleep(0.05)
    seconds = time.monotonic() - started
    done.set()
    thread.join()
    worker.stop()
    every = sorted(waits["transaction"] + waits["autocommit"])
    figures = {
        "variant": variant,
        "import_s": seconds,
        "writes": len(every),
        "median_ms": statistics.median(every) * 1000,
        "max_s": every[-1],
        "max_transaction_s": max(waits["transaction"]),
        "max_autocommit_s": max(waits["autocommit"], default=0.0),
    }
    print(MARKER + json.dumps(figures), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant, alternating")
    parser.add_argument("--child", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.rows, args.child)
        return
    print(f"{args.rows:,} rows parsed and applied by the embedded worker; another thread writes every 50 ms")
    print("| variant | import (parse + apply) | writes | median wait | longest wait (in a transaction, autocommit) |")
    print("|---|---|---|---|---|")
    for _ in range(args.rounds):
        for variant in VARIANTS:
            command = [sys.executable, __file__, "--rows", str(args.rows), "--child", variant]
            out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
            line = next(line for line in out.splitlines() if line.startswith(MARKER))
            run = json.loads(line[len(MARKER) :])
            print(
                f"| {variant} | {run['import_s']:.2f} s | {run['writes']} | {run['median_ms']:.0f} ms | "
                f"{run['max_s']:.2f} s ({run['max_transaction_s']:.2f} s, {run['max_autocommit_s']:.2f} s) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
