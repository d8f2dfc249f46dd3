"""The customer's webhook receiver is down for an hour of (simulated) time during a bulk import: every
message is retried on its backoff schedule, none is lost, and when the receiver comes back each logical
message arrives exactly once more, byte-identical to its failed attempts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.helpers.bulk import run_inline, sample_bytes, submit
from tests.helpers.factories import make_tenant
from tests.helpers.receiver import Reply
from tests.helpers.webhooks import deliver_due
from webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.signing import webhook_key_generate

pytestmark = pytest.mark.django_db(transaction=True)


def bulk_received(receiver) -> list:
    """What the receiver got of the bulk request's messages (its patients' document-download ones aside)."""
    return [item for item in receiver.snapshot() if b'"type":"medical.bulk-patient-create"' in item.body]


def test_receiver_down_for_an_hour_then_back(broker, receiver):
    tenant = make_tenant()
    WebhookEndpoint.objects.create(customer=tenant.customer, url=f"{receiver.url}/hook", key=webhook_key_generate())
    receiver.default = lambda item: Reply(status=503)
    request = submit(tenant, sample_bytes(50, seed=3))
    run_inline(request.id)
    bulk = WebhookMessage.objects.filter(request_id=str(request.id), message_type="medical.bulk-patient-create")
    assert bulk.count() == 2  # processing and completed, both in the outbox

    simulated = timedelta(0)
    rounds = 0
    while simulated < timedelta(hours=1):
        deliver_due()
        rounds += 1
        pending = list(bulk.filter(status=MessageStatus.PENDING))
        assert len(pending) == 2, "a message gave up (or was lost) within the first hour"
        # Order: `completed` is never sent while `processing` is undelivered; only `processing` is retried.
        assert {m.message_type for m in pending if m.attempts} == {pending[0].message_type}
        assert all('"status":"processing"' in bytes(item.body).decode() for item in bulk_received(receiver))
        # Jump the clock to the earliest retry: that is how long the receiver stayed down this round.
        wait = min(m.next_attempt_at for m in pending if m.attempts) - timezone.now()
        simulated += max(wait, timedelta(0))
        bulk.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    failed_attempts = len(bulk_received(receiver))
    assert rounds >= 6 and failed_attempts >= 6  # backoff, not a tight loop: ~10 s doubling to the hour

    receiver.default = lambda item: Reply(status=200)
    deliver_due()
    assert set(bulk.values_list("status", flat=True)) == {MessageStatus.DELIVERED}
    received = bulk_received(receiver)
    assert len(received) == failed_attempts + 2  # exactly one successful attempt per message
    by_message: dict[str, set[bytes]] = {}
    for item in received:
        by_message.setdefault(item.json()["meta"]["messageId"], set()).add(item.body)
    assert set(by_message) == {str(m) for m in bulk.values_list("id", flat=True)}
    assert all(len(bodies) == 1 for bodies in by_message.values())
    deliver_due()
    assert len(bulk_received(receiver)) == len(received)  # delivered messages are never sent again
