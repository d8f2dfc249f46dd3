"""Redelivery: support, the customer's retry endpoint and the retry_webhooks command make failed (or chosen)
messages due again, with a fresh retry window."""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webhooks import schedule
from webhooks.models import MessageStatus, WebhookMessage
from webhooks.services.delivery import webhook_message_deliver
from webhooks.services.outbox import wake_on_commit
from webhooks.types import Id

logger = logging.getLogger(__name__)


def _redeliverable(customer_id: Id | None = None) -> Q:
    """Failed messages, and pending ones that have failed at least once (waiting for a retry)."""
    query = Q(status=MessageStatus.FAILED) | Q(status=MessageStatus.PENDING, failures__gt=0)
    if customer_id is not None:
        query &= Q(customer_id=customer_id)
    return query


@transaction.atomic
def webhook_redeliver(
    *, customer_id: Id | None = None, message_id: Id | None = None, dispatch: bool = True
) -> list[uuid.UUID]:
    """Makes messages due now with a fresh retry window and queues them (support, the retry endpoint, the
    command). With `message_id`: that message, whatever its status (a delivered one is sent again, same
    bytes and messageId). Without: every failed or failing message (of `customer_id` when given).
    `dispatch=False` leaves the delivery to the caller (or the scheduler). Returns the ids rescheduled."""
    now = timezone.now()
    messages = WebhookMessage.objects.all()
    if message_id is not None:
        messages = messages.filter(id=message_id)
        if customer_id is not None:
            messages = messages.filter(customer_id=customer_id)
    else:
        messages = messages.filter(_redeliverable(customer_id))
    found = list(messages.values_list("id", "customer_id"))
    ids = [message_id for message_id, _ in found]
    if ids:
        WebhookMessage.objects.filter(id__in=ids).update(
            status=MessageStatus.PENDING,
            failures=0,
            next_attempt_at=now,
            give_up_at=now + schedule.retry_window(),
            delivered_at=None,
        )
        if dispatch:
            wake_on_commit(customer for _, customer in found)
    return ids


def webhook_deliver_now(*, message_ids: list[uuid.UUID]) -> dict[uuid.UUID, bool | None]:
    """Delivers the given messages in this process right away (the command's synchronous mode), oldest first
    so the messages of one bulk request keep their order; the per-customer cap applies as for workers."""
    ordered = list(
        WebhookMessage.objects.filter(id__in=message_ids).order_by("created_at").values_list("id", flat=True)
    )
    results: dict[uuid.UUID, bool | None] = dict.fromkeys(message_ids)
    for message_id in ordered:
        results[message_id] = webhook_message_deliver(message_id=message_id)
    return results
