"""Fixtures of the Document Query tests: a webhook endpoint on a real local receiver of its own."""

from __future__ import annotations

import pytest

from tests.helpers.receiver import Receiver
from webhooks.models import WebhookEndpoint
from webhooks.signing import webhook_key_generate


@pytest.fixture
def webhook_receiver():
    """A receiver of its own: the shared `receiver` plays the network gateway in some of these tests."""
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def hook(tenant, webhook_receiver) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        customer=tenant.customer, url=f"{webhook_receiver.url}/hook", key=webhook_key_generate()
    )
