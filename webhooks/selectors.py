"""Reads of the webhook settings and health, always scoped by customer."""

from __future__ import annotations

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
