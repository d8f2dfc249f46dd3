"""Dramatiq actors of webhook delivery: a customer's deliverers (services.delivery), woken on commit of new
messages and by the scheduler job `webhook_deliver_due`. Retries are not Dramatiq's: a failed attempt stores
its `next_attempt_at` and the customer is woken when it is due.

Two queues, one per lane: a deliverer woken for a message of the priority lane waits on `webhooks-status`, so
it is not queued behind the standard lane's deliverers of every customer."""

from __future__ import annotations

from typing import Any

import dramatiq

from webhooks import services
from webhooks.services import dispatch

QUEUE = "webhooks"
STATUS_QUEUE = "webhooks-status"
QUEUES = (QUEUE, STATUS_QUEUE)
OPTIONS: dict[str, Any] = {"max_retries": 3, "min_backoff": 1_000, "max_backoff": 30_000, "time_limit": 120_000}


@dramatiq.actor(actor_name=dispatch.DELIVER.name, queue_name=QUEUE, **OPTIONS)
def webhook_deliver(customer_id: str, slot: int) -> None:
    services.webhook_customer_deliver(customer_id=customer_id, slot=slot)


@dramatiq.actor(actor_name=dispatch.DELIVER_PRIORITY.name, queue_name=STATUS_QUEUE, **OPTIONS)
def webhook_deliver_priority(customer_id: str, slot: int) -> None:
    services.webhook_customer_deliver(customer_id=customer_id, slot=slot)
