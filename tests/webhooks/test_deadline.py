"""The hard deadline of one delivery attempt (SPEC §4): connect, headers and body together within
WEBHOOK_TIMEOUT_SECONDS, against real misbehaving receivers (socket servers in a thread)."""

from __future__ import annotations

import time

import pytest

from tests.helpers.receiver import HostileReceiver
from tests.helpers.waiting import wait_until
from tests.helpers.webhooks import create_message, make_due
from tests.webhooks.conftest import HANGING_HOST
from webhooks.models import DeliveryAttempt, MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.services import WebhookUrlRefused, webhook_message_deliver, webhook_ping
from webhooks.signing import webhook_key_generate

MARGIN = 1.5


@pytest.fixture(params=["drip", "slow-headers", "dead"])
def hostile(request):
    server = HostileReceiver(request.param, interval=0.3 if request.param != "dead" else 2.0).start()
    yield server
    server.stop()


def test_an_attempt_ends_at_the_deadline_whatever_the_receiver_does(tenant, hostile, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 2
    WebhookEndpoint.objects.create(customer=tenant.customer, url=f"{hostile.url}/hook", key=webhook_key_generate())
    message = create_message(tenant.customer.id)
    started = time.monotonic()
    assert webhook_message_deliver(message_id=message.id) is False
    elapsed = time.monotonic() - started
    assert 2 <= elapsed < 2 + MARGIN
    assert hostile.requests == 1
    attempt = DeliveryAttempt.objects.get(message=message)
    assert attempt.error == "timeout after 2s" and not attempt.succeeded
    assert 2000 <= attempt.latency_ms < (2 + MARGIN) * 1000
    message.refresh_from_db()
    assert message.status == MessageStatus.PENDING and message.failures == 1 and message.next_attempt_at
    # Our side closed the connection: the receiver sees it go (no thread of ours left behind on it).
    wait_until(lambda: len(hostile.held_for) == 1, timeout=5, message="connection closed by the sender")


def test_a_receiver_dripping_a_byte_every_2s_is_cut_at_5s_and_retried(tenant, settings):
    assert settings.WEBHOOK_TIMEOUT_SECONDS == 5
    server = HostileReceiver("drip", interval=2.0).start()
    try:
        WebhookEndpoint.objects.create(customer=tenant.customer, url=server.url, key=webhook_key_generate())
        message = create_message(tenant.customer.id)
        started = time.monotonic()
        assert webhook_message_deliver(message_id=message.id) is False
        assert 5 <= time.monotonic() - started < 5 + MARGIN
        assert DeliveryAttempt.objects.get(message=message).error == "timeout after 5s"
        # Retried, not lost: the next attempt is scheduled on the backoff.
        WebhookMessage.objects.filter(id=message.id).update(next_attempt_at=message.created_at)
        assert webhook_message_deliver(message_id=message.id) is False
        assert server.requests == 2
        assert list(DeliveryAttempt.objects.filter(message=message).values_list("number", flat=True)) == [1, 2]
    finally:
        server.stop()


def test_the_ping_is_under_the_same_deadline(hostile, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 1.5
    started = time.monotonic()
    with pytest.raises(WebhookUrlRefused, match=r"timeout after 1.5s"):
        webhook_ping(url=hostile.url, key=webhook_key_generate())
    assert time.monotonic() - started < 1.5 + MARGIN


@pytest.mark.parametrize("allow_private", [False, True], ids=["guarded", "private-allowed"])
def test_a_hanging_dns_lookup_ends_the_attempt_at_the_deadline_and_the_message_is_retried(
    tenant, settings, hanging_dns, allow_private
):
    """getaddrinfo has no timeout: the lookup runs in the resolver pool and the attempt waits for it only as
    long as its deadline allows. The attempt fails with the resolution reason and the message is retried."""
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = allow_private
    WebhookEndpoint.objects.create(
        customer=tenant.customer, url=f"https://{HANGING_HOST}/hook", key=webhook_key_generate()
    )
    message = create_message(tenant.customer.id)
    started = time.monotonic()
    assert webhook_message_deliver(message_id=message.id) is False
    assert time.monotonic() - started < 1 + MARGIN
    attempt = DeliveryAttempt.objects.get(message=message)
    assert attempt.error == f"could not resolve host {HANGING_HOST} within 1 s" and not attempt.succeeded
    assert attempt.latency_ms < (1 + MARGIN) * 1000
    message.refresh_from_db()
    assert message.status == MessageStatus.PENDING and message.failures == 1 and message.next_attempt_at
    assert message.last_error == attempt.error
    # Retried, not lost: once its backoff has passed the message is attempted again (the resolver still hangs).
    make_due(message)
    assert webhook_message_deliver(message_id=message.id) is False
    assert list(DeliveryAttempt.objects.filter(message=message).values_list("number", flat=True)) == [1, 2]
    assert hanging_dns == [HANGING_HOST, HANGING_HOST]
