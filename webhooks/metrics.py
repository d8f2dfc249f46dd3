"""webhooks' figures for /metrics (metriport_bulk.ops.metrics): messages by status, delivery attempts by
outcome, messages due."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Min
from prometheus_client.core import CounterMetricFamily

from metriport_bulk.ops.metrics import StateFigures, gauge_by_status
from webhooks.models import DeliveryAttempt, MessageStatus, WebhookMessage


def state_figures(now: datetime) -> StateFigures:
    counts = dict(WebhookMessage.objects.values_list("status").annotate(n=Count("id")).order_by())
    attempts = CounterMetricFamily(
        "metriport_bulk_webhook_attempts", "Webhook delivery attempts by outcome.", labels=["outcome"]
    )
    delivered = DeliveryAttempt.objects.filter(succeeded=True).count()
    attempts.add_metric(["delivered"], delivered)
    attempts.add_metric(["failed"], DeliveryAttempt.objects.count() - delivered)
    due = WebhookMessage.objects.filter(status=MessageStatus.PENDING, next_attempt_at__lte=now).aggregate(
        n=Count("pk"), first=Min("next_attempt_at")
    )
    return StateFigures(
        families=[
            gauge_by_status(
                "metriport_bulk_webhook_messages", "Webhook messages by status.", counts, MessageStatus.values
            ),
            attempts,
        ],
        pending=[("webhooks", due["n"], due["first"])],
    )
