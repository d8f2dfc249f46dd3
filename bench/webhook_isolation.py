"""Customer B's 50-row dry run alone, then with customer A's webhook endpoint dripping (200, then one byte
every 2 s) and a backlog of A's messages, on the real stack (PostgreSQL, Redis, SeaweedFS): bulk/docqueries
workers and a webhooks worker in processes of their own, the scheduler beside them.

    .venv/bin/python bench/webhook_isolation.py
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import running_workers, start_stack, start_workers, wait_for_workers  # noqa: E402


def main() -> None:
    env = start_stack("whiso")
    from django.db import transaction

    from bulkimport import services
    from bulkimport.models import BulkRequest
    from devtools.receiver import HostileReceiver, Receiver
    from devtools.tenants import make_tenant
    from webhooks.models import WebhookEndpoint
    from webhooks.services import webhook_message_create
    from webhooks.signing import webhook_key_generate

    receiver = Receiver().start()
    dripping = HostileReceiver("drip", interval=2.0).start()
    a, b = make_tenant("A Health"), make_tenant("B Clinic")
    WebhookEndpoint.objects.create(customer=a.customer, url=dripping.url, key=webhook_key_generate())
    WebhookEndpoint.objects.create(customer=b.customer, url=f"{receiver.url}/b", key=webhook_key_generate())
    from devtools.sample import sample_bytes

    body = sample_bytes(50, seed=5)

    def b_dry_run() -> float:
        before = len(receiver.snapshot())
        request = services.bulk_request_create(customer=b.customer, facility_id=None, dry_run=True)
        started = time.monotonic()
        services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
        while BulkRequest.objects.get(id=request.id).status != "completed" or len(receiver.snapshot()) < before + 2:
            time.sleep(0.02)
        return time.monotonic() - started

    hooks = start_workers(1, 4, env, queues=["webhooks", "webhooks-status"])
    try:
        wait_for_workers(hooks.pid, 1)
        with running_workers(2, 1, env, queues=["bulk", "docqueries"]):
            alone = [b_dry_run() for _ in range(3)]
            for n in range(50):
                with transaction.atomic():
                    webhook_message_create(customer_id=a.customer.id, message_type="t", data={"n": n})
            while dripping.requests < 1:
                time.sleep(0.05)
            beside = [b_dry_run() for _ in range(3)]
    finally:
        os.killpg(hooks.pid, signal.SIGKILL)
        hooks.wait()
        dripping.stop()
        receiver.stop()
    print("B's 50-row dry run, upload -> completed + both webhooks received (3 runs each):")
    print("  alone:             " + ", ".join(f"{t:.2f} s" for t in alone))
    print("  A's URL dripping:  " + ", ".join(f"{t:.2f} s" for t in beside))


if __name__ == "__main__":
    main()
