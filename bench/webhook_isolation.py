"""Webhook delivery at the receiver's speed, and fair between customers, on the real stack (PostgreSQL, Redis,
SeaweedFS): a webhooks worker of 1 process x 4 threads (`--queues webhooks webhooks-status`), the scheduler
beside it, and local receivers in this process.

1. Document notification throughput to a fast local receiver, by patients per message
   (WEBHOOK_DOCUMENT_BATCH_SIZE; variants alternate): the outbox messages of one customer are committed at
   once, as when a bulk request's last Document Queries end, and the time until the receiver has them all
   is measured. Then a 100,000-patient import's notices at the default batch size.
2. Customer B's first document delivery (and B's 50-row dry run with both its webhooks) beside customer A's
   backlog of 50,000 pending document messages, A's receiver fast, then dripping (200, then a byte every 2 s).

    .venv/bin/python bench/webhook_isolation.py [--quick]
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import running_workers, start_stack, start_workers, wait_for_workers  # noqa: E402

QUICK = "--quick" in sys.argv
BATCHES = [1, 25, 100, 250]
PATIENTS = 5_000 if QUICK else 20_000
SINGLE_PATIENTS = 1_000 if QUICK else 2_000  # one patient per message is slow: fewer, same rate
IMPORT_PATIENTS = 20_000 if QUICK else 100_000
BACKLOG = 5_000 if QUICK else 50_000


def _patient(n: int) -> dict:
    """One `patients` entry as a real notice has it (sandbox-like documents)."""
    documents = [
        {
            "id": f"doc-{n}-{k}",
            "fileName": f"ccd-{k}.xml",
            "description": "CCD",
            "mimeType": "application/xml",
            "size": 1234,
        }
        for k in range(n % 3)
    ]
    return {"patientId": str(uuid.uuid4()), "externalId": f"MRN-{n}", "status": "completed", "documents": documents}


def _notices(customer_id, patients: int, batch: int, request_id: str) -> int:
    """Commits the document notices of `patients` patients, `batch` to a message; returns the messages."""
    from django.db import transaction

    from webhooks.services import webhook_messages_create
    from webhooks.types import DOCUMENT_DOWNLOAD

    entries = [_patient(n) for n in range(patients)]
    items = [(request_id, {"patients": entries[i : i + batch]}) for i in range(0, patients, batch)]
    with transaction.atomic():
        for start in range(0, len(items), 2_000):
            webhook_messages_create(
                customer_id=customer_id,
                message_type=DOCUMENT_DOWNLOAD,
                items=items[start : start + 2_000],
                ordered=False,
            )
    return len(items)


def _wait_received(receiver, count: int, timeout: float = 600.0) -> float:
    started = time.monotonic()
    while len(receiver.received) < count:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"only {len(receiver.received)} of {count} received after {timeout:.0f} s")
        time.sleep(0.01)
    return time.monotonic()


def throughput(env) -> None:
    from devtools.receiver import Receiver
    from devtools.tenants import make_tenant
    from webhooks.models import WebhookEndpoint
    from webhooks.signing import webhook_key_generate

    print("1. Document notifications to a fast local receiver (1 webhooks worker process x 4 threads)")
    print(
        f"   {'patients/message':>16} {'patients':>9} {'messages':>9} {'seconds':>8} {'messages/s':>11} {'patients/s':>11}"
    )
    results: dict[int, list[float]] = {batch: [] for batch in BATCHES}
    for round_ in range(2):
        for batch in BATCHES if round_ == 0 else list(reversed(BATCHES)):
            receiver = Receiver().start()
            tenant = make_tenant(f"T{batch}-{round_}")
            WebhookEndpoint.objects.create(
                customer=tenant.customer, url=f"{receiver.url}/t", key=webhook_key_generate()
            )
            patients = SINGLE_PATIENTS if batch == 1 else PATIENTS
            started = time.monotonic()
            messages = _notices(tenant.customer.id, patients, batch, str(uuid.uuid4()))
            elapsed = _wait_received(receiver, messages) - started
            receiver.stop()
            results[batch].append(patients / elapsed)
            print(
                f"   {batch:>16} {patients:>9,} {messages:>9,} {elapsed:>8.2f} {messages / elapsed:>11,.1f} {patients / elapsed:>11,.0f}"
            )
    best = {batch: max(rates) for batch, rates in results.items()}
    print(
        "   best patients/s by batch: " + ", ".join(f"{b}: {r:,.0f} ({r / best[1]:.0f}x of 1)" for b, r in best.items())
    )

    from django.conf import settings

    batch = settings.WEBHOOK_DOCUMENT_BATCH_SIZE
    receiver = Receiver().start()
    tenant = make_tenant("Import")
    WebhookEndpoint.objects.create(customer=tenant.customer, url=f"{receiver.url}/i", key=webhook_key_generate())
    started = time.monotonic()
    messages = _notices(tenant.customer.id, IMPORT_PATIENTS, batch, str(uuid.uuid4()))
    committed = time.monotonic()
    done = _wait_received(receiver, messages)
    receiver.stop()
    print(
        f"   a {IMPORT_PATIENTS:,}-patient import's notices ({messages:,} messages of {batch}): all received "
        f"{done - committed:.1f} s after the last was committed ({IMPORT_PATIENTS / (done - started):,.0f} patients/s "
        f"including the outbox writes; goal: within 60 s)"
    )


def isolation(env) -> None:
    from bulkimport import services
    from bulkimport.models import BulkRequest
    from devtools.receiver import HostileReceiver, Receiver
    from devtools.sample import sample_bytes
    from devtools.tenants import make_tenant
    from webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage
    from webhooks.signing import webhook_key_generate

    print(f"2. Customer B beside customer A's backlog of {BACKLOG:,} pending document messages")
    body = sample_bytes(50, seed=5)
    for mode in ("fast", "dripping"):
        receiver = Receiver().start()
        a_receiver = Receiver().start() if mode == "fast" else HostileReceiver("drip", interval=2.0).start()
        a, b = make_tenant(f"A {mode}"), make_tenant(f"B {mode}")
        WebhookEndpoint.objects.create(customer=a.customer, url=f"{a_receiver.url}/a", key=webhook_key_generate())
        WebhookEndpoint.objects.create(customer=b.customer, url=f"{receiver.url}/b", key=webhook_key_generate())
        _notices(a.customer.id, BACKLOG, 1, str(uuid.uuid4()))
        while not WebhookMessage.objects.filter(customer=a.customer).exclude(attempts=0).exists():
            time.sleep(0.02)
        time.sleep(2)  # A's deliverers are busy with the backlog
        firsts = []
        for _ in range(3):
            before = len(receiver.received)
            started = time.monotonic()
            _notices(b.customer.id, 1, 1, str(uuid.uuid4()))
            firsts.append(_wait_received(receiver, before + 1, timeout=300) - started)
        dry_runs = []
        for _ in range(3):
            before = len(receiver.received)
            request = services.bulk_request_create(customer=b.customer, facility_id=None, dry_run=True)
            started = time.monotonic()
            services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
            while BulkRequest.objects.get(id=request.id).status != "completed" or len(receiver.received) < before + 2:
                time.sleep(0.02)
            dry_runs.append(time.monotonic() - started)
        a_left = WebhookMessage.objects.filter(customer=a.customer, status=MessageStatus.PENDING).count()
        a_receiver.stop()
        receiver.stop()
        print(
            f"   A's receiver {mode:>8}: B's first document delivery "
            + ", ".join(f"{t:.2f} s" for t in firsts)
            + "; B's dry run, upload -> completed + both webhooks "
            + ", ".join(f"{t:.2f} s" for t in dry_runs)
            + f" (A still had {a_left:,} pending; goal < 5 s)"
        )
        WebhookEndpoint.objects.filter(customer=a.customer).update(url="")  # A's leftovers fail, unsent


def main() -> None:
    env = start_stack("whiso")
    hooks = start_workers(1, 4, env, queues=["webhooks", "webhooks-status"])
    try:
        wait_for_workers(hooks.pid, 1)
        # The scheduler (retries) runs beside them, and a worker of the import queues for B's dry runs.
        with running_workers(1, 2, env, queues=["bulk", "bulk-chunks", "docqueries", "docqueries-express"]):
            throughput(env)
            isolation(env)
    finally:
        os.killpg(hooks.pid, signal.SIGKILL)
        hooks.wait()


if __name__ == "__main__":
    main()
