"""The customer's webhook settings: its URL (accepted only after a signed ping answered with the same pong)
and its signing key."""

from __future__ import annotations

import json
import logging
import secrets
import uuid

from django.utils import timezone

from metriport_bulk.lib.http import UnsafeUrlError, check_url
from patients.models import Customer
from webhooks import signing, types
from webhooks.models import WebhookEndpoint
from webhooks.services.delivery import MAX_ANSWER_BYTES, post
from webhooks.services.outbox import webhook_body

logger = logging.getLogger(__name__)


class WebhookUrlRefused(Exception):
    """The URL was not accepted; the message is the customer-facing reason."""


def webhook_endpoint_get_or_create(*, customer: Customer) -> WebhookEndpoint:
    endpoint, _ = WebhookEndpoint.objects.get_or_create(
        customer=customer, defaults={"key": signing.webhook_key_generate()}
    )
    return endpoint


def webhook_ping(*, url: str, key: str) -> None:
    """Sends a signed `ping` to `url` and raises WebhookUrlRefused unless it answers 2xx `{"pong": <same>}`."""
    token = secrets.token_urlsafe(16)
    message_id = uuid.uuid4()
    body = webhook_body(message_id=message_id, message_type=types.PING, when=timezone.now(), data={"ping": token})
    answer, outcome = post(url=url, key=key, body=body, message_id=str(message_id), read_answer=True)
    if not outcome.succeeded:
        raise WebhookUrlRefused(f"The webhook URL did not accept the ping ({outcome.error}).")
    try:
        pong = json.loads(answer).get("pong") if len(answer) <= MAX_ANSWER_BYTES else None
    except (ValueError, AttributeError):
        pong = None
    if pong != token:
        raise WebhookUrlRefused('The webhook URL answered the ping without {"pong": "<the ping value>"}.')


def webhook_url_set(*, customer: Customer, url: str | None) -> WebhookEndpoint:
    """Sets (after a successful ping) or clears the customer's webhook URL. Generates the key if none, before
    the ping, so the ping is signed with the key the receiver will keep using."""
    endpoint = webhook_endpoint_get_or_create(customer=customer)
    url = (url or "").strip()
    if url:
        try:
            check_url(url)
        except UnsafeUrlError as exc:
            raise WebhookUrlRefused(f"The webhook URL is refused: {exc}.") from exc
        webhook_ping(url=url, key=endpoint.key)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=url, updated_at=timezone.now())
    endpoint.refresh_from_db()
    return endpoint
