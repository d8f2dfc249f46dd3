"""Fixtures of the webhook tests: a customer whose webhook URL points at the real local receiver."""

from __future__ import annotations

import socket
import threading

import pytest

from webhooks.models import WebhookEndpoint
from webhooks.signing import webhook_key_generate


@pytest.fixture
def endpoint(tenant, receiver) -> WebhookEndpoint:
    """The tenant's endpoint, set directly (no ping): the delivery tests are about delivery."""
    return WebhookEndpoint.objects.create(
        customer=tenant.customer, url=f"{receiver.url}/hook", key=webhook_key_generate()
    )


HANGING_HOST = "hang.example.test"


@pytest.fixture
def hanging_dns(monkeypatch):
    """A resolver that never answers for HANGING_HOST (other names resolve as usual); the hung lookups are
    released at teardown, so no resolver thread stays blocked after the test."""
    real_getaddrinfo = socket.getaddrinfo
    release = threading.Event()
    lookups: list[str] = []

    def hanging_getaddrinfo(host, port, *args, **kwargs):
        if host != HANGING_HOST:
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(host)
        release.wait()
        raise socket.gaierror(socket.EAI_AGAIN, "released by the test's teardown")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_getaddrinfo)
    yield lookups
    release.set()
