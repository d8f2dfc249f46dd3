"""Dramatiq actor of webhook delivery: the fast path (sent on commit). Retries are not Dramatiq's: a failed
attempt stores its `next_attempt_at` and the scheduler job `webhook_deliver_due` picks it up when due."""

from __future__ import annotations

import dramatiq

from webhooks import services

QUEUE = "webhooks"


@dramatiq.actor(queue_name=QUEUE, max_retries=3, min_backoff=1_000, max_backoff=30_000, time_limit=120_000)
def webhook_deliver(message_id: str) -> None:
    services.webhook_message_deliver(message_id=message_id)
