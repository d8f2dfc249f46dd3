"""Dramatiq actors of webhook delivery: the fast path (sent on commit). Retries are not Dramatiq's: a failed
attempt stores its `next_attempt_at` and the scheduler job `webhook_deliver_due` picks it up when due.

Two queues: a bulk request's status messages have `webhooks-status` to themselves, so the `completed` of an
import is taken at once, never behind the thousands of document-download messages its own Document Queries
queued on `webhooks` a moment before."""

from __future__ import annotations

import dramatiq

from webhooks import services
from webhooks.services import dispatch

QUEUE = "webhooks"
STATUS_QUEUE = "webhooks-status"
QUEUES = (QUEUE, STATUS_QUEUE)


@dramatiq.actor(
    actor_name=dispatch.DELIVER.name,
    queue_name=QUEUE,
    max_retries=3,
    min_backoff=1_000,
    max_backoff=30_000,
    time_limit=120_000,
)
def webhook_deliver(message_id: str) -> None:
    services.webhook_message_deliver(message_id=message_id)


@dramatiq.actor(
    actor_name=dispatch.DELIVER_STATUS.name,
    queue_name=STATUS_QUEUE,
    max_retries=3,
    min_backoff=1_000,
    max_backoff=30_000,
    time_limit=120_000,
)
def webhook_deliver_status(message_id: str) -> None:
    services.webhook_message_deliver(message_id=message_id)
