"""One customer's dripping webhook endpoint does not slow another customer down (SPEC §4): with customer A's
receiver dripping its answers, customer B's dry run completes and B's webhooks arrive within a bound far below
what the stall used to cost (80-99 s), while A's messages are retried, not lost."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from bulkimport.models import BulkRequest
from tests.helpers.bulk import sample_bytes, submit
from tests.helpers.factories import make_tenant
from tests.helpers.receiver import HostileReceiver
from tests.helpers.waiting import wait_until
from webhooks.models import DeliveryAttempt, MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.services import webhook_message_create
from webhooks.signing import webhook_key_generate

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_dripping_endpoint_of_a_does_not_delay_b(pipeline, receiver, settings):
    dripping = HostileReceiver("drip", interval=2.0).start()
    try:
        a, b = make_tenant("A Health"), make_tenant("B Clinic")
        WebhookEndpoint.objects.create(customer=a.customer, url=dripping.url, key=webhook_key_generate())
        WebhookEndpoint.objects.create(customer=b.customer, url=f"{receiver.url}/b", key=webhook_key_generate())
        for n in range(20):  # A's backlog: each attempt is held up to the 5 s deadline
            with transaction.atomic():
                webhook_message_create(customer_id=a.customer.id, message_type="t", data={"n": n})
        wait_until(lambda: dripping.requests >= 1, timeout=10, message="A's endpoint is being called")

        started = time.monotonic()
        request = submit(b, sample_bytes(50, seed=5), dry_run=True)
        wait_until(
            lambda: BulkRequest.objects.get(id=request.id).status == "completed",
            timeout=20,
            message="B's dry run completed",
        )
        statuses = lambda: [  # noqa: E731
            item.json()["bulkPatientCreate"]["status"] for item in receiver.snapshot() if item.path == "/b"
        ]
        wait_until(lambda: statuses() == ["processing", "completed"], timeout=20, message="B's webhooks")
        assert time.monotonic() - started < 15  # it took 80-99 s when A's receiver stalled everyone

        # A never had more than its cap in flight, and its messages are retried, not lost.
        assert dripping.requests <= 2 * (1 + int(time.monotonic() - started) // 5 + 1)
        wait_until(
            lambda: DeliveryAttempt.objects.filter(message__customer=a.customer).count() >= 2,
            timeout=20,
            message="A's attempts recorded",
        )
        a_messages = WebhookMessage.objects.filter(customer=a.customer)
        assert a_messages.count() == 20 and not a_messages.filter(status=MessageStatus.FAILED).exists()
        assert set(DeliveryAttempt.objects.filter(message__customer=a.customer).values_list("error", flat=True)) == {
            "timeout after 5s"
        }
    finally:
        dripping.stop()
