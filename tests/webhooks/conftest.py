"""Fixtures of the webhook tests: a customer whose webhook URL points at the real local receiver."""

from __future__ import annotations

import pytest

from webhooks.models import WebhookEndpoint
from webhooks.signing import webhook_key_generate


@pytest.fixture
def endpoint(tenant, receiver) -> WebhookEndpoint:
    """The tenant's endpoint, set directly (no ping): the delivery tests are about delivery."""
    return WebhookEndpoint.objects.create(
        customer=tenant.customer, url=f"{receiver.url}/hook", key=webhook_key_generate()
    )
