"""Fixtures of the webhook tests: a customer whose webhook URL points at the real local receiver."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from webhooks.models import WebhookEndpoint, WebhookMessage
from webhooks.services import webhook_message_create
from webhooks.signing import webhook_key_generate


@pytest.fixture
def endpoint(tenant, receiver) -> WebhookEndpoint:
    """The tenant's endpoint, set directly (no ping): the delivery tests are about delivery."""
    return WebhookEndpoint.objects.create(
        customer=tenant.customer, url=f"{receiver.url}/hook", key=webhook_key_generate()
    )


def create_message(
    customer_id, *, data: dict | None = None, message_type: str = "test.event", request_id=None
) -> WebhookMessage:
    with transaction.atomic():
        return webhook_message_create(
            customer_id=customer_id,
            message_type=message_type,
            data=data or {"thing": {"id": "t-1"}},
            request_id=request_id,
        )


def make_due(message: WebhookMessage) -> None:
    """Moves a message's retry time to the past, as if its backoff delay had elapsed."""
    WebhookMessage.objects.filter(id=message.id).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
