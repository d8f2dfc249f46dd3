"""Per-customer concurrency adapts to the receiver (AIMD) within WEBHOOK_MIN/MAX_CONCURRENT_PER_CUSTOMER: it
grows while the receiver answers within WEBHOOK_SLOW_SECONDS, halves when it answers slowly or fails, and a
customer's deliveries in flight never exceed it."""

from __future__ import annotations

import threading
import uuid

from django.db import transaction
from django.utils import timezone

from tests.helpers.receiver import Reply
from tests.helpers.waiting import wait_until
from tests.helpers.webhooks import create_message
from webhooks.models import DeliverySlot, MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.services import customer_concurrency, webhook_customer_deliver, webhook_messages_create
from webhooks.services.delivery import AttemptOutcome, ClaimedAttempt, _record, concurrency_bounds


def _answer(endpoint, *, succeeded: bool = True, latency_ms: int = 20) -> None:
    """Records one attempt's outcome for a message of the endpoint's customer (as a deliverer does)."""
    message = create_message(endpoint.customer_id)
    WebhookMessage.objects.filter(id=message.id).update(attempts=1)
    claimed = ClaimedAttempt(message.id, endpoint.customer_id, 1, endpoint.url, endpoint.key, bytes(message.body))
    outcome = AttemptOutcome(timezone.now(), succeeded, 200 if succeeded else 503, latency_ms, "" if succeeded else "x")
    _record(claimed, outcome)


def _concurrency(endpoint) -> float:
    return WebhookEndpoint.objects.get(pk=endpoint.pk).concurrency


def test_fast_answers_raise_the_concurrency_to_the_upper_bound_and_never_beyond(endpoint, settings):
    settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER = 5
    assert customer_concurrency(endpoint.customer_id) == 2  # before any answer
    seen = []
    for _ in range(40):
        _answer(endpoint)
        seen.append(_concurrency(endpoint))
    assert seen == sorted(seen)  # additive increase, never a step down
    assert max(seen) == 5.0 and seen[-1] == 5.0
    assert seen[0] == 2.5  # c + 1/c
    assert customer_concurrency(endpoint.customer_id) == 5


def test_slow_answers_and_failures_halve_it_down_to_the_lower_bound(endpoint, settings):
    settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER = 8
    settings.WEBHOOK_MIN_CONCURRENT_PER_CUSTOMER = 2
    settings.WEBHOOK_SLOW_SECONDS = 0.5
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(concurrency=8.0)
    _answer(endpoint, latency_ms=900)  # delivered, but slowly
    assert _concurrency(endpoint) == 4.0
    _answer(endpoint, succeeded=False)
    assert _concurrency(endpoint) == 2.0
    for _ in range(3):
        _answer(endpoint, succeeded=False)
    assert _concurrency(endpoint) == 2.0  # the lower bound
    assert customer_concurrency(endpoint.customer_id) == 2


def test_the_bounds_are_sane_whatever_the_settings(settings):
    settings.WEBHOOK_MIN_CONCURRENT_PER_CUSTOMER = 0
    settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER = 0
    assert concurrency_bounds() == (1.0, 1.0)  # always at least one delivery
    settings.WEBHOOK_MIN_CONCURRENT_PER_CUSTOMER = 6
    settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER = 3
    assert concurrency_bounds() == (6.0, 6.0)  # the upper bound never below the lower one


def test_a_deliverer_whose_slot_is_outside_the_concurrency_stops_after_one_message(endpoint, receiver, settings):
    """After the receiver slowed down (concurrency 1), the deliverer of slot 1 delivers the message it took
    and retires; the one of slot 0 goes on."""
    settings.WEBHOOK_SLOW_SECONDS = 0.05
    receiver.default = lambda item: Reply(delay=0.1)
    with transaction.atomic():
        webhook_messages_create(
            customer_id=endpoint.customer_id, message_type="t", items=[(None, {"n": n}) for n in range(3)]
        )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(concurrency=2.0)
    assert webhook_customer_deliver(customer_id=endpoint.customer_id, slot=1) == 1
    assert _concurrency(endpoint) == 1.0
    assert webhook_customer_deliver(customer_id=endpoint.customer_id, slot=0) == 2
    assert WebhookMessage.objects.filter(status=MessageStatus.DELIVERED).count() == 3


def test_a_deliverer_of_a_busy_slot_does_nothing(endpoint, receiver):
    create_message(endpoint.customer_id)
    DeliverySlot.objects.create(
        customer_id=endpoint.customer_id,
        number=0,
        message_id=uuid.uuid4(),
        leased_until=timezone.now().replace(year=2100),
    )
    assert webhook_customer_deliver(customer_id=endpoint.customer_id, slot=0) == 0
    assert receiver.snapshot() == []


def test_deliveries_in_flight_never_exceed_the_upper_bound(worker, endpoint, receiver, settings):
    """A fast receiver: the concurrency grows to its upper bound (3), and the receiver never has more than 3
    requests of the customer in hand at once."""
    settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER = 3
    in_flight, peak, lock = [0], [0], threading.Lock()

    def reply(item):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        threading.Event().wait(0.02)
        with lock:
            in_flight[0] -= 1
        return Reply()

    receiver.default = reply
    with transaction.atomic():
        webhook_messages_create(
            customer_id=endpoint.customer_id, message_type="t", items=[(None, {"n": n}) for n in range(120)]
        )
    wait_until(
        lambda: WebhookMessage.objects.filter(status=MessageStatus.DELIVERED).count() == 120,
        timeout=60,
        message="every message delivered",
    )
    assert _concurrency(endpoint) == 3.0
    assert 1 <= peak[0] <= 3
