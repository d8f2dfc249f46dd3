"""The outbox with a real Dramatiq worker: delivery is sent on commit, never for a rolled-back change."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from tests.helpers.receiver import Reply
from tests.helpers.runtime import recording_enqueues
from tests.helpers.webhooks import make_due
from webhooks.models import MessageStatus, WebhookMessage
from webhooks.services import webhook_deliver_due, webhook_message_create


@pytest.fixture
def worker_endpoint(worker, endpoint):
    return endpoint


def _wait_for_status(message_id, status: str, timeout: float = 20.0) -> WebhookMessage:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = WebhookMessage.objects.get(id=message_id)
        if message.status == status and (status != MessageStatus.PENDING or message.failures):
            return message
        time.sleep(0.05)
    raise AssertionError(f"message {message_id} never reached {status}")


def test_the_actor_delivers_after_the_transaction_commits(worker_endpoint, broker, tenant, receiver):
    with recording_enqueues(broker) as sent:
        with transaction.atomic():
            message = webhook_message_create(customer_id=tenant.customer.id, message_type="test.event", data={"n": 1})
            assert sent == []  # not before commit
        assert sent == ["webhook_deliver"]
    (request,) = receiver.wait_for_count(1)
    assert request.body == bytes(message.body)
    assert _wait_for_status(message.id, MessageStatus.DELIVERED).attempts == 1


def test_nothing_is_stored_or_sent_when_the_transaction_rolls_back(worker_endpoint, broker, tenant, receiver):
    class Boom(Exception):
        pass

    with recording_enqueues(broker) as sent, pytest.raises(Boom), transaction.atomic():
        webhook_message_create(customer_id=tenant.customer.id, message_type="test.event", data={"n": 1})
        raise Boom
    assert sent == []  # no delivery queued: none can follow
    assert receiver.snapshot() == []
    assert not WebhookMessage.objects.exists()


def test_a_failed_fast_path_attempt_is_retried_by_the_scheduler_job(worker_endpoint, tenant, receiver):
    receiver.replies = [Reply(status=500)]
    with transaction.atomic():
        message = webhook_message_create(customer_id=tenant.customer.id, message_type="test.event", data={"n": 1})
    _wait_for_status(message.id, MessageStatus.PENDING)
    make_due(message)
    webhook_deliver_due()
    first, second = receiver.wait_for_count(2)
    assert first.body == second.body
    assert _wait_for_status(message.id, MessageStatus.DELIVERED).attempts == 2
