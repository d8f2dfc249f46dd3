"""Document-download notices of a bulk request are batched (Metriport's `patients` array, up to
WEBHOOK_DOCUMENT_BATCH_SIZE per message), and each patient is notified exactly once: in one message, whose
retries (after a failed attempt, or after the worker delivering it was killed mid-request) resend the same
messageId and bytes, never a second message with the patient in it."""

from __future__ import annotations

import collections
import json
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from docqueries.models import DocumentQuery
from tests.helpers.bulk import run_inline, sample_bytes, submit
from tests.helpers.factories import make_tenant
from tests.helpers.processes import start_worker
from tests.helpers.receiver import Reply
from tests.helpers.waiting import wait_until
from tests.helpers.webhooks import deliver_due
from webhooks.models import DeliverySlot, MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.signing import metriport_signature_verify, webhook_key_generate
from webhooks.types import DOCUMENT_DOWNLOAD

pytestmark = pytest.mark.django_db(transaction=True)

BATCH = 40


def _documents(receiver) -> list:
    return [item for item in receiver.snapshot() if f'"type":"{DOCUMENT_DOWNLOAD}"'.encode() in item.body]


def _assert_each_patient_once(receiver, request, key: str) -> dict[str, list]:
    """Every patient of the request is in exactly one message (by messageId); a message's attempts carry the
    same bytes, each signed. Returns the attempts received per messageId."""
    attempts: dict[str, list] = collections.defaultdict(list)
    for item in _documents(receiver):
        attempts[item.json()["meta"]["messageId"]].append(item)
    patients: list[str] = []
    for message_id, items in attempts.items():
        assert len({item.body for item in items}) == 1, f"{message_id} changed between attempts"
        for item in items:
            assert metriport_signature_verify(key=key, body=item.body, signature=item.headers["x-metriport-signature"])
        payload = json.loads(items[0].body)
        assert payload["meta"]["requestId"] == str(request.id)
        assert 1 <= len(payload["patients"]) <= BATCH
        patients += [entry["patientId"] for entry in payload["patients"]]
    expected = sorted(
        str(p) for p in DocumentQuery.objects.filter(bulk_request_id=request.id).values_list("patient_id", flat=True)
    )
    assert sorted(patients) == expected  # each patient exactly once, none missing
    assert len(attempts) == -(-len(expected) // BATCH)  # full batches (the queries ended together)
    return attempts


def test_each_patient_is_notified_once_across_failed_attempts_and_retries(broker, receiver, settings):
    settings.WEBHOOK_DOCUMENT_BATCH_SIZE = BATCH
    tenant = make_tenant()
    key = webhook_key_generate()
    WebhookEndpoint.objects.create(customer=tenant.customer, url=f"{receiver.url}/hook", key=key)
    seen: set[str] = set()
    lock = threading.Lock()

    def first_attempt_fails(item):
        message_id = item.json()["meta"]["messageId"]
        with lock:
            first = message_id not in seen
            seen.add(message_id)
        return Reply(status=503) if first else Reply()

    receiver.default = first_attempt_fails
    request = submit(tenant, sample_bytes(150, seed=4))
    run_inline(request.id)
    for _ in range(10):
        deliver_due()
        failing = WebhookMessage.objects.filter(status=MessageStatus.PENDING, failures__gt=0)
        if not failing.update(next_attempt_at=timezone.now() - timedelta(seconds=1)):  # the backoff elapsed
            break
    assert not WebhookMessage.objects.exclude(status=MessageStatus.DELIVERED).exists()
    attempts = _assert_each_patient_once(receiver, request, key)
    assert all(len(items) == 2 for items in attempts.values())  # 503, then the same message again


@pytest.mark.real_services
def test_each_patient_is_notified_once_when_the_worker_is_killed_mid_delivery(broker, receiver, settings, tmp_path):
    settings.WEBHOOK_DOCUMENT_BATCH_SIZE = BATCH
    tenant = make_tenant()
    key = webhook_key_generate()
    WebhookEndpoint.objects.create(customer=tenant.customer, url=f"{receiver.url}/hook", key=key)
    held = threading.Event()
    held_ids: list[str] = []

    def hold_the_first_document_notice(item):
        if b'"patients"' in item.body and not held.is_set():
            held_ids.append(item.json()["meta"]["messageId"])
            held.set()
            return Reply(delay=15)  # the worker is killed while this request is in the receiver's hands
        return Reply()

    receiver.default = hold_the_first_document_notice
    request = submit(tenant, sample_bytes(150, seed=4))
    run_inline(request.id)  # the notices are in the outbox, their deliverers queued on the broker
    worker = start_worker(
        tmp_path, "webhooks", WEBHOOK_ALLOW_PRIVATE_URLS="true", WEBHOOK_DOCUMENT_BATCH_SIZE=str(BATCH)
    )
    try:
        wait_until(held.is_set, timeout=60, message="a document notice is in the receiver's hands")
    finally:
        worker.kill()  # SIGKILL, mid-request
    (in_hand_id,) = held_ids
    message = WebhookMessage.objects.get(id=in_hand_id)
    assert message.status == MessageStatus.PENDING and message.attempts == 1  # claimed, never recorded

    # Time passes: the leases of the killed deliverer's claims (the message in hand and the rest of its batch)
    # and of its slot run out; the scheduler and a new worker take over.
    broker.flush_all()
    WebhookMessage.objects.filter(status=MessageStatus.PENDING).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    DeliverySlot.objects.update(leased_until=timezone.now() - timedelta(seconds=1))
    receiver.default = lambda item: Reply()
    deliver_due()
    assert not WebhookMessage.objects.exclude(status=MessageStatus.DELIVERED).exists()
    attempts = _assert_each_patient_once(receiver, request, key)
    assert len(attempts[in_hand_id]) == 2  # sent again: same messageId, same bytes (at-least-once)
