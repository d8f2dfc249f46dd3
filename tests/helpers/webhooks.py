"""Webhook helpers: outbox messages made in a transaction of their own, due at once, delivered in this thread."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from tests.helpers.runtime import assert_no_live_worker
from webhooks.models import DeliverySlot, WebhookMessage
from webhooks.services import webhook_customer_deliver, webhook_deliver_due, webhook_message_create


def create_message(
    customer_id, *, data: dict | None = None, message_type: str = "test.event", request_id=None
) -> WebhookMessage:
    with transaction.atomic():
        return webhook_message_create(
            customer_id=customer_id,
            message_type=message_type,
            data=data or {"thing": {"id": "t-1"}},
            request_id=request_id,
        )


def make_due(message: WebhookMessage) -> None:
    """Moves a message's retry time to the past, as if its backoff delay had elapsed."""
    WebhookMessage.objects.filter(id=message.id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def deliver_due(rounds: int = 20) -> None:
    """The scheduler job plus a synchronous stand-in for the `webhooks` workers: wakes the customers with due
    messages, then runs each deliverer queued here, until nothing more is due. The queue messages themselves
    (and those queued by a finished deliverer) go to a broker no worker reads, so they are forgotten as a lost
    one would be."""
    assert_no_live_worker("deliver_due")
    for _ in range(rounds):
        DeliverySlot.objects.update(queued_at=None)
        woken = webhook_deliver_due()
        if not woken:
            return
        for customer_id, slot in woken:
            webhook_customer_deliver(customer_id=customer_id, slot=slot)
