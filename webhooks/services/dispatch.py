"""The delivery messages, sent by reference (`metriport_bulk.lib.messages`) to the actors webhooks.tasks
declares under these names: no service imports the actors module."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from metriport_bulk.lib.messages import ActorRef
from webhooks import types

DELIVER = ActorRef("webhook_deliver")
DELIVER_STATUS = ActorRef("webhook_deliver_status")


def send(messages: Iterable[tuple[uuid.UUID | str, str]]) -> None:
    """Queues one delivery per (message id, message type), on the queue of its kind."""
    for message_id, message_type in messages:
        ref = DELIVER_STATUS if message_type == types.BULK_PATIENT_CREATE else DELIVER
        ref.send(str(message_id))
