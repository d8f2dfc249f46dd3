"""Fair between customers on every lane: customer A's backlog puts at most A's few deliverers in the queue, each
giving its thread back after a turn, so customer B's first message waits for a few of A's turns, never for
A's backlog to drain."""

from __future__ import annotations

import pytest
from django.db import transaction

from tests.helpers.factories import make_tenant
from tests.helpers.receiver import Reply
from tests.helpers.waiting import wait_until
from webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.services import delivery, webhook_message_create, webhook_messages_create
from webhooks.signing import webhook_key_generate
from webhooks.types import Lane

pytestmark = pytest.mark.django_db(transaction=True)

TURN = 5  # messages per deliverer turn in these tests
BACKLOG = 300


@pytest.mark.parametrize("lane", [Lane.STANDARD, Lane.PRIORITY])
def test_b_first_message_is_delivered_after_a_few_of_as_turns_not_after_as_backlog(
    worker, receiver, settings, monkeypatch, lane
):
    settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER = 2
    monkeypatch.setattr(delivery, "DELIVERER_MESSAGES", TURN)
    receiver.default = lambda item: Reply(delay=0.01)
    a, b = make_tenant("A Health"), make_tenant("B Clinic")
    WebhookEndpoint.objects.create(customer=a.customer, url=f"{receiver.url}/a", key=webhook_key_generate())
    WebhookEndpoint.objects.create(customer=b.customer, url=f"{receiver.url}/b", key=webhook_key_generate())
    with transaction.atomic():
        webhook_messages_create(
            customer_id=a.customer.id, message_type="t", items=[(None, {"n": n}) for n in range(BACKLOG)], lane=lane
        )
    wait_until(lambda: len(receiver.snapshot()) >= 1, timeout=20, message="A's backlog is being delivered")
    with transaction.atomic():
        webhook_message_create(customer_id=b.customer.id, message_type="t", data={"b": 1}, lane=lane)
    wait_until(
        lambda: any(item.path == "/b" for item in receiver.snapshot()), timeout=30, message="B's message arrives"
    )
    paths = [item.path for item in receiver.snapshot()]
    b_at = paths.index("/b")
    a_before = b_at - paths[:b_at].count("/b")
    a_when_b_created = 1  # at least one of A's was received before B's message existed
    # After B's message is created, at most A's deliverers already queued (2) run a turn each, plus the ones
    # in flight: B's message never waits for A's backlog.
    assert a_before - a_when_b_created <= 2 * TURN + 2 * TURN, paths[: b_at + 1]
    assert a_before < BACKLOG - 100
    wait_until(
        lambda: WebhookMessage.objects.filter(status=MessageStatus.DELIVERED).count() == BACKLOG + 1,
        timeout=120,
        message="A's backlog drains after it",
    )
