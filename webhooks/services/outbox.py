"""The outbox (SPEC §6): a message is stored in the transaction of the state change it reports, with its body
serialized once (these exact bytes are signed and sent), and its delivery is queued on commit."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from metriport_bulk.lib import sending
from webhooks import schedule
from webhooks.models import WebhookEndpoint, WebhookMessage
from webhooks.services import dispatch

logger = logging.getLogger(__name__)

# A customer or message id: a UUID read from a row, or its text (an actor message, a command's argument).
Id = uuid.UUID | str


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_body(
    *, message_id: uuid.UUID, message_type: str, when: datetime, data: dict[str, Any], request_id: str | None = None
) -> bytes:
    """The payload's bytes: compact JSON, serialized once; these exact bytes are signed and sent."""
    meta: dict[str, str] = {"messageId": str(message_id)}
    if request_id is not None:
        meta["requestId"] = str(request_id)
    meta["when"] = _iso(when)
    meta["type"] = message_type
    payload = {"meta": meta, **data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder).encode("utf-8")


# --- Outbox ---------------------------------------------------------------------------------------------


def webhook_message_create(
    *, customer_id: Id, message_type: str, data: dict[str, Any], request_id: str | None = None
) -> WebhookMessage | None:
    """Stores one outbox message in the caller's transaction and schedules its delivery on commit.

    Builds `{"meta": {"messageId", ["requestId",] "when", "type"}, **data}`. Returns None (stores nothing)
    when the customer has no webhook URL."""
    stored = _messages_store(customer_id=customer_id, message_type=message_type, items=[(request_id, data)])
    return stored[0] if stored else None


def webhook_messages_create(*, customer_id: Id, message_type: str, items: list[tuple[str, dict[str, Any]]]) -> int:
    """webhook_message_create for many messages of one customer at once ((request id, data) per message):
    one INSERT, one dispatch on commit. Returns how many were stored (0 without a webhook URL)."""
    return len(_messages_store(customer_id=customer_id, message_type=message_type, items=items))


def _messages_store(
    *, customer_id: Id, message_type: str, items: Sequence[tuple[str | None, dict[str, Any]]]
) -> list[WebhookMessage]:
    """The outbox rows of `items` (each body serialized once), inserted together and dispatched on commit;
    none when the customer has no webhook URL."""
    url = WebhookEndpoint.objects.filter(customer_id=customer_id).values_list("url", flat=True).first()
    if not url or not items:
        return []
    now = timezone.now()
    give_up_at = now + schedule.retry_window()
    messages = []
    for request_id, data in items:
        message_id = uuid.uuid4()
        body = webhook_body(
            message_id=message_id, message_type=message_type, when=now, data=data, request_id=request_id
        )
        messages.append(
            WebhookMessage(
                id=message_id,
                customer_id=customer_id,
                message_type=message_type,
                request_id=str(request_id) if request_id is not None else "",
                body=body,
                next_attempt_at=now,
                give_up_at=give_up_at,
            )
        )
    WebhookMessage.objects.bulk_create(messages, batch_size=1000)
    send_on_commit([(message.id, message.message_type) for message in messages])
    return messages


def send_on_commit(messages: Iterable[tuple[uuid.UUID, str]]) -> None:
    """Queues the deliveries of (message id, message type) when the caller's transaction commits."""
    queued = list(messages)
    if queued:
        # A lost send: the message is pending and due, webhook_deliver_due queues it again.
        sending.send_on_commit(lambda: dispatch.send(queued), what=f"{len(queued)} webhook delivery(ies)")
