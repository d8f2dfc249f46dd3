"""The outbox (SPEC §6): a message is stored in the transaction of the state change it reports, with its body
serialized once (these exact bytes are signed and sent), and its customer's deliverers are woken on commit."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from webhooks import schedule
from webhooks.models import WebhookEndpoint, WebhookMessage
from webhooks.services.delivery import webhook_customer_wake
from webhooks.types import Id, Lane

logger = logging.getLogger(__name__)


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
    *,
    customer_id: Id,
    message_type: str,
    data: dict[str, Any],
    request_id: str | None = None,
    lane: int = Lane.STANDARD,
    ordered: bool = True,
) -> WebhookMessage | None:
    """Stores one outbox message in the caller's transaction and wakes the customer's deliverers on commit.

    Builds `{"meta": {"messageId", ["requestId",] "when", "type"}, **data}`. The caller chooses the `lane` (a
    lower one is delivered first) and whether the message waits for the earlier `ordered` messages of its
    request. Returns None (stores nothing) when the customer has no webhook URL."""
    stored = _messages_store(
        customer_id=customer_id, message_type=message_type, items=[(request_id, data)], lane=lane, ordered=ordered
    )
    return stored[0] if stored else None


def webhook_messages_create(
    *,
    customer_id: Id,
    message_type: str,
    items: Sequence[tuple[str | None, dict[str, Any]]],
    lane: int = Lane.STANDARD,
    ordered: bool = True,
) -> int:
    """webhook_message_create for many messages of one customer at once ((request id, data) per message):
    one INSERT, one wake on commit. Returns how many were stored (0 without a webhook URL)."""
    return len(
        _messages_store(customer_id=customer_id, message_type=message_type, items=items, lane=lane, ordered=ordered)
    )


def _messages_store(
    *, customer_id: Id, message_type: str, items: Sequence[tuple[str | None, dict[str, Any]]], lane: int, ordered: bool
) -> list[WebhookMessage]:
    """The outbox rows of `items` (each body serialized once), inserted together, the customer woken on commit;
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
                lane=lane,
                ordered=ordered,
                body=body,
                next_attempt_at=now,
                give_up_at=give_up_at,
            )
        )
    WebhookMessage.objects.bulk_create(messages, batch_size=1000)
    wake_on_commit([customer_id])
    return messages


def wake_on_commit(customer_ids: Iterable[Id]) -> None:
    """Wakes the deliverers of these customers when the caller's transaction commits."""
    customers = list(dict.fromkeys(customer_ids))

    def wake() -> None:
        for customer_id in customers:
            webhook_customer_wake(customer_id=customer_id)

    if customers:
        transaction.on_commit(wake)
