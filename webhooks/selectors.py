"""Reads of the webhook settings and health, always scoped by customer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q

from patients.models import Customer
from webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage


@dataclass(frozen=True)
class WebhookHealth:
    webhook_url: str | None
    status: str  # "not-configured" | "ok" | "failing"
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    pending: int  # waiting for a first attempt or a retry
    failing: int  # pending after at least one failed attempt (retries scheduled)
    failed: int  # gave up; `POST /settings/webhook/retry` redelivers them


def webhook_endpoint_get(*, customer: Customer) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.filter(customer=customer).first()


def webhook_health(*, customer: Customer) -> WebhookHealth:
    endpoint = webhook_endpoint_get(customer=customer)
    # Counts use the (customer, status) index and never touch delivered messages, which grow without bound.
    counts = WebhookMessage.objects.filter(
        customer=customer, status__in=[MessageStatus.PENDING, MessageStatus.FAILED]
    ).aggregate(
        pending=Count("id", filter=Q(status=MessageStatus.PENDING)),
        failing=Count("id", filter=Q(status=MessageStatus.PENDING, failures__gt=0)),
        failed=Count("id", filter=Q(status=MessageStatus.FAILED)),
    )
    url = endpoint.url if endpoint and endpoint.url else None
    if url is None:
        status = "not-configured"
    elif counts["failing"] or counts["failed"]:
        status = "failing"
    else:
        status = "ok"
    return WebhookHealth(
        webhook_url=url,
        status=status,
        last_success_at=endpoint.last_success_at if endpoint else None,
        last_failure_at=endpoint.last_failure_at if endpoint else None,
        last_error=(endpoint.last_error or None) if endpoint else None,
        pending=counts["pending"],
        failing=counts["failing"],
        failed=counts["failed"],
    )


@dataclass(frozen=True)
class MessageHold:
    """Why one delivery attempt of a message did not happen (retry_webhooks reports it):
    `outcome` is "delivered" (by someone else meanwhile), "failed" (given up), "locked" (another deliverer
    holds it or every delivery slot of its customer) or "pending" (it waits for something else)."""

    outcome: str
    reason: str


def webhook_message_hold(*, message_id: uuid.UUID | str, now: datetime | None = None) -> MessageHold:
    """Why `webhook_message_deliver` made no attempt on this message just now."""
    from django.conf import settings
    from django.utils import timezone

    from webhooks.models import DeliverySlot

    now = now or timezone.now()
    message = WebhookMessage.objects.filter(id=message_id).first()
    if message is None:
        return MessageHold("pending", "no such message")
    if message.status == MessageStatus.DELIVERED:
        return MessageHold("delivered", "delivered meanwhile by another deliverer (a worker or the scheduler)")
    if message.status == MessageStatus.FAILED:
        return MessageHold("failed", message.last_error or "given up")
    if message.next_attempt_at is not None and message.next_attempt_at > now:
        return MessageHold(
            "locked",
            f"another deliverer is sending it (its claim runs until {message.next_attempt_at:%H:%M:%S} UTC; a "
            "deliverer that stopped mid-attempt leaves it until then)",
        )
    if message.request_id:
        earlier = (
            WebhookMessage.objects.filter(
                customer_id=message.customer_id,
                request_id=message.request_id,
                status=MessageStatus.PENDING,
                created_at__lt=message.created_at,
            )
            .order_by("created_at")
            .values_list("id", flat=True)
            .first()
        )
        if earlier is not None:
            return MessageHold(
                "pending", f"waits for message {earlier} of the same bulk request, which must arrive before it"
            )
    slots = max(1, int(settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER))
    leased = DeliverySlot.objects.filter(customer_id=message.customer_id, number__lt=slots, leased_until__gt=now)
    busy = list(leased.order_by("leased_until").values_list("leased_until", flat=True))
    if len(busy) >= slots:
        return MessageHold(
            "locked",
            f"all {slots} delivery slots of its customer are held (WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER) by running "
            f"deliverers, or by stopped ones until {busy[0]:%H:%M:%S} UTC at the latest",
        )
    return MessageHold("pending", "deferred: a bulk request status message of its customer goes first")
