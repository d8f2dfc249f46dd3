"""The deliverer messages, sent by reference (`metriport_bulk.lib.messages`) to the actors webhooks.tasks
declares under these names: no service imports the actors module."""

from __future__ import annotations

from collections.abc import Iterable

from metriport_bulk.lib.messages import ActorRef
from webhooks.types import Id, Lane

DELIVER = ActorRef("webhook_deliver")
DELIVER_PRIORITY = ActorRef("webhook_deliver_priority")


def send(deliverers: Iterable[tuple[Id, int]], *, lane: int) -> None:
    """Queues one deliverer per (customer id, slot), on the queue of `lane`."""
    ref = DELIVER_PRIORITY if lane == Lane.PRIORITY else DELIVER
    for customer_id, slot in deliverers:
        ref.send(str(customer_id), slot)
