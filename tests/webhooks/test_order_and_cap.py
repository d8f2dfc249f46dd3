"""Order of a bulk request's messages and the per-customer cap on concurrent deliveries, with a real worker
(several threads) and the real receiver."""

from __future__ import annotations

import threading

from django.db import transaction

from tests.helpers.receiver import HostileReceiver, Reply
from tests.helpers.waiting import wait_until
from tests.helpers.webhooks import deliver_due
from webhooks import types
from webhooks.models import DeliveryAttempt, MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.services import webhook_deliver_due, webhook_message_create, webhook_messages_create
from webhooks.signing import webhook_key_generate
from webhooks.types import Lane


def _bulk_message(customer_id, request_id: str, status: str) -> WebhookMessage:
    with transaction.atomic():
        return webhook_message_create(
            customer_id=customer_id,
            message_type="medical.bulk-patient-create",
            data={"bulkPatientCreate": {"requestId": request_id, "status": status}},
            request_id=request_id,
            lane=Lane.PRIORITY,
        )


def test_processing_is_delivered_before_completed_even_when_its_first_attempt_fails(worker, tenant, receiver, settings):
    settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER = 4
    WebhookEndpoint.objects.create(customer=tenant.customer, url=f"{receiver.url}/hook", key=webhook_key_generate())
    failed_once: set[str] = set()
    lock = threading.Lock()

    def reply(item):
        bulk = item.json()["bulkPatientCreate"]
        with lock:
            if bulk["status"] == "processing" and bulk["requestId"] not in failed_once:
                failed_once.add(bulk["requestId"])
                return Reply(status=503)
        return Reply()

    receiver.default = reply
    requests = [f"r-{n}" for n in range(5)]
    for request_id in requests:
        _bulk_message(tenant.customer.id, request_id, "processing")
    for request_id in requests:
        _bulk_message(tenant.customer.id, request_id, "completed")
    # The failed first attempts are made due again at once, as the backoff elapsing would.
    for _ in range(200):
        WebhookMessage.objects.filter(status=MessageStatus.PENDING, failures__gt=0).update(
            next_attempt_at="2000-01-01T00:00:00Z"
        )
        webhook_deliver_due()
        if WebhookMessage.objects.filter(status=MessageStatus.DELIVERED).count() == 10:
            break
        threading.Event().wait(0.1)
    assert WebhookMessage.objects.filter(status=MessageStatus.DELIVERED).count() == 10
    delivered = [item.json()["bulkPatientCreate"] for item in receiver.snapshot()]
    for request_id in requests:
        statuses = [bulk["status"] for bulk in delivered if bulk["requestId"] == request_id]
        assert statuses == ["processing", "processing", "completed"]  # 503, retry, then completed


def test_a_slow_customer_has_at_most_the_cap_in_flight_and_its_messages_are_deferred_not_failed(
    worker, tenant, settings
):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER = 1
    server = HostileReceiver("drip", interval=0.3).start()
    try:
        WebhookEndpoint.objects.create(customer=tenant.customer, url=server.url, key=webhook_key_generate())
        messages = []
        for n in range(4):
            with transaction.atomic():
                messages.append(webhook_message_create(customer_id=tenant.customer.id, message_type="t", data={"n": n}))
        wait_until(lambda: server.requests >= 1, timeout=10)
        # The fast path sent all four at once; only one may be in flight, the others are deferred.
        threading.Event().wait(0.5)
        assert server.requests == 1
        assert DeliveryAttempt.objects.count() == 0 or DeliveryAttempt.objects.count() == 1
        # The slot is handed on: every message gets its (timed-out) first attempt, one after the other.
        wait_until(lambda: DeliveryAttempt.objects.count() >= 4, timeout=20, message="every message attempted")
        assert set(DeliveryAttempt.objects.values_list("error", flat=True)) == {"timeout after 1s"}
        assert all(m.failures == 1 for m in WebhookMessage.objects.all())  # deferrals are not failures
        assert max(server.held_for) < 2.0
    finally:
        server.stop()


def test_a_message_of_the_priority_lane_goes_ahead_of_a_backlog_of_the_standard_lane(tenant, receiver):
    """The `completed` of an import must not wait behind the document-download webhooks its own queries made
    (thousands at 100k rows): the caller puts it in the priority lane, and a customer's deliverers take the
    priority lane first. Webhooks itself knows no message type."""
    WebhookEndpoint.objects.create(customer=tenant.customer, url=f"{receiver.url}/hook", key=webhook_key_generate())
    with transaction.atomic():
        webhook_messages_create(
            customer_id=tenant.customer.id,
            message_type=types.DOCUMENT_DOWNLOAD,
            items=[(f"q-{n}", {"patientId": f"p-{n}"}) for n in range(30)],
        )
    completed = _bulk_message(tenant.customer.id, "r-1", "completed")
    deliver_due()
    received = [item.json()["meta"]["messageId"] for item in receiver.snapshot()]
    assert len(received) == 31 and received[0] == str(completed.id)


def test_an_imports_completed_is_not_delivered_behind_its_document_download_backlog(worker, tenant, receiver, settings):
    """With a real worker: 200 document-download messages are queued first (as an import's Document Queries
    end), then the import's `completed`. The status has a queue of its own and the customer's next slot, so it
    arrives while most of the backlog is still waiting, instead of after all of it."""
    settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER = 2
    WebhookEndpoint.objects.create(customer=tenant.customer, url=f"{receiver.url}/hook", key=webhook_key_generate())
    receiver.default = lambda item: Reply(delay=0.05)
    with transaction.atomic():
        webhook_messages_create(
            customer_id=tenant.customer.id,
            message_type=types.DOCUMENT_DOWNLOAD,
            items=[(f"q-{n}", {"patientId": f"p-{n}"}) for n in range(200)],
        )
    _bulk_message(tenant.customer.id, "r-1", "completed")
    wait_until(
        lambda: any(b'"completed"' in item.body for item in receiver.snapshot()),
        timeout=60,
        message="the completed webhook arrives",
    )
    before_completed = next(i for i, item in enumerate(receiver.snapshot()) if b'"completed"' in item.body)
    assert before_completed < 100, f"{before_completed} document-download webhooks went first"
    wait_until(
        lambda: WebhookMessage.objects.filter(status=MessageStatus.DELIVERED).count() == 201,
        timeout=120,
        message="the backlog drains after it",
    )
