"""Delivery of outbox messages to the real local receiver: signing, byte-identical retries, timeouts,
redirects, SSRF refusal, the retry window, claims."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

from django.utils import timezone

from tests.helpers.receiver import Reply
from tests.helpers.webhooks import create_message, deliver_due, make_due
from webhooks.models import DeliveryAttempt, MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.services import (
    webhook_message_create,
    webhook_message_deliver,
    webhook_redeliver,
)
from webhooks.services.delivery import _claim


def test_no_message_is_stored_when_the_customer_has_no_webhook_url(tenant):
    assert webhook_message_create(customer_id=tenant.customer.id, message_type="x", data={}) is None
    WebhookEndpoint.objects.create(customer=tenant.customer, url="", key="k")
    assert webhook_message_create(customer_id=tenant.customer.id, message_type="x", data={}) is None
    assert not WebhookMessage.objects.exists()


def test_body_is_compact_json_with_meta_first_and_data_merged(endpoint, tenant):
    message = create_message(
        tenant.customer.id, data={"bulkPatientCreate": {"requestId": "r-1", "status": "processing"}}, request_id="r-1"
    )
    body = bytes(message.body)
    payload = json.loads(body)
    assert body == json.dumps(payload, separators=(",", ":")).encode()
    assert list(payload) == ["meta", "bulkPatientCreate"]
    meta = payload["meta"]
    assert meta == {"messageId": str(message.id), "requestId": "r-1", "when": meta["when"], "type": "test.event"}
    assert meta["when"].endswith("Z") and "T" in meta["when"]
    without_request = create_message(tenant.customer.id)
    assert "requestId" not in json.loads(bytes(without_request.body))["meta"]


def test_delivery_is_signed_and_verifies_with_an_independent_hmac(endpoint, tenant, receiver):
    message = create_message(tenant.customer.id)
    assert webhook_message_deliver(message_id=message.id) is True
    (request,) = receiver.snapshot()
    assert request.method == "POST" and request.path == "/hook"
    assert request.body == bytes(message.body)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "metriport-bulk"
    expected = hmac.new(endpoint.key.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["x-metriport-signature"], expected)
    # Standard Webhooks headers, checked the way a Standard Webhooks library does.
    secret = base64.b64decode(endpoint.key.removeprefix("whsec_"))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode() + request.body
    assert request.headers["webhook-id"] == str(message.id)
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert (
        request.headers["webhook-signature"]
        == "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()
    )
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED and message.next_attempt_at is None and message.delivered_at
    (attempt,) = DeliveryAttempt.objects.filter(message=message)
    assert attempt.succeeded and attempt.status_code == 200 and attempt.number == 1 and attempt.latency_ms >= 0


def test_standard_headers_are_omitted_when_disabled(endpoint, tenant, receiver, settings):
    settings.WEBHOOK_STANDARD_HEADERS = False
    webhook_message_deliver(message_id=create_message(tenant.customer.id).id)
    (request,) = receiver.snapshot()
    assert "webhook-signature" not in request.headers
    assert "x-metriport-signature" in request.headers


def test_a_500_then_200_is_one_logical_message_in_two_attempts_with_identical_bytes(endpoint, tenant, receiver):
    receiver.replies = [Reply(status=500)]
    message = create_message(tenant.customer.id)
    before = timezone.now()
    assert webhook_message_deliver(message_id=message.id) is False
    message.refresh_from_db()
    assert message.status == MessageStatus.PENDING
    assert message.failures == 1 and message.last_status_code == 500 and message.last_error == "HTTP 500"
    # First retry is ~10 s later (+/-20 % jitter): not due yet, so the scheduler job leaves it alone.
    assert before + timedelta(seconds=7) < message.next_attempt_at < timezone.now() + timedelta(seconds=13)
    deliver_due()
    assert len(receiver.snapshot()) == 1
    make_due(message)
    deliver_due()
    first, second = receiver.wait_for_count(2)
    assert first.body == second.body == bytes(message.body)
    assert first.json()["meta"]["messageId"] == second.json()["meta"]["messageId"] == str(message.id)
    assert first.headers["x-metriport-signature"] == second.headers["x-metriport-signature"]
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED and message.attempts == 2
    assert list(DeliveryAttempt.objects.filter(message=message).values_list("number", "status_code", "succeeded")) == [
        (1, 500, False),
        (2, 200, True),
    ]
    assert WebhookMessage.objects.count() == 1


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(endpoint, tenant, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    receiver.replies = [Reply(delay=3)]
    message = create_message(tenant.customer.id)
    started = time.monotonic()
    assert webhook_message_deliver(message_id=message.id) is False
    assert time.monotonic() - started < 2.5
    attempt = DeliveryAttempt.objects.get(message=message)
    assert attempt.error == "timeout after 0.5s" and attempt.status_code is None
    assert attempt.latency_ms < 2500
    message.refresh_from_db()
    assert message.status == MessageStatus.PENDING and message.failures == 1


def test_redirects_are_not_followed_and_count_as_failures(endpoint, tenant, receiver):
    receiver.replies = [Reply(status=302, headers={"location": f"{receiver.url}/elsewhere"})]
    message = create_message(tenant.customer.id)
    assert webhook_message_deliver(message_id=message.id) is False
    # The receiver records a request before answering it: a followed redirect would be here already.
    assert [request.path for request in receiver.snapshot()] == ["/hook"]
    attempt = DeliveryAttempt.objects.get(message=message)
    assert attempt.status_code == 302 and attempt.error == "HTTP 302: redirects are not followed"


def test_private_urls_are_refused_at_delivery_when_not_allowed(endpoint, tenant, receiver, settings):
    message = create_message(tenant.customer.id)
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    assert webhook_message_deliver(message_id=message.id) is False
    assert receiver.snapshot() == []
    attempt = DeliveryAttempt.objects.get(message=message)
    assert attempt.error.startswith("refused: the address 127.0.0.1 is a loopback address")
    assert attempt.status_code is None


def test_connection_refused_is_logged_without_the_url(endpoint, tenant, receiver):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url="http://127.0.0.1:9/hook?token=secret")
    message = create_message(tenant.customer.id)
    assert webhook_message_deliver(message_id=message.id) is False
    attempt = DeliveryAttempt.objects.get(message=message)
    assert attempt.error == "connection refused"
    assert "secret" not in WebhookEndpoint.objects.get(pk=endpoint.pk).last_error


def test_a_failure_at_the_end_of_the_retry_window_is_final(endpoint, tenant, receiver):
    receiver.replies = [Reply(status=503)]
    message = create_message(tenant.customer.id)
    WebhookMessage.objects.filter(id=message.id).update(give_up_at=timezone.now() - timedelta(seconds=1), failures=30)
    assert webhook_message_deliver(message_id=message.id) is False
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.next_attempt_at is None
    deliver_due()
    assert len(receiver.snapshot()) == 1


def test_a_message_is_claimed_once_and_a_claimed_one_is_not_due(endpoint, tenant, receiver):
    message = create_message(tenant.customer.id)
    now = timezone.now()
    assert _claim(message.id, now=now) is not None
    assert _claim(message.id, now=now) is None
    assert webhook_message_deliver(message_id=message.id) is None
    deliver_due()
    assert receiver.snapshot() == []


def test_a_slow_attempt_whose_lease_expired_does_not_overwrite_the_newer_attempt(endpoint, tenant, receiver):
    from webhooks.services.delivery import AttemptOutcome, _record

    message = create_message(tenant.customer.id)
    stale = _claim(message.id, now=timezone.now())
    make_due(message)  # the lease ran out; another deliverer takes attempt 2 and succeeds
    assert webhook_message_deliver(message_id=message.id) is True
    _record(stale, AttemptOutcome(timezone.now(), False, None, 9000, "timeout after 5s"))
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED and message.failures == 0
    assert DeliveryAttempt.objects.filter(message=message).count() == 2


def test_removing_the_url_fails_pending_messages_without_a_request(endpoint, tenant, receiver):
    message = create_message(tenant.customer.id)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url="")
    assert webhook_message_deliver(message_id=message.id) is None
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.last_error == "no webhook URL is configured"
    assert receiver.snapshot() == []


def test_deliver_due_delivers_every_due_message_of_every_customer(endpoint, tenant, other_tenant, receiver):
    WebhookEndpoint.objects.create(customer=other_tenant.customer, url=f"{receiver.url}/other", key="whsec_b3RoZXI=")
    messages = [create_message(tenant.customer.id) for _ in range(5)] + [create_message(other_tenant.customer.id)]
    deliver_due()
    received = receiver.wait_for_count(6)
    assert sorted(request.json()["meta"]["messageId"] for request in received) == sorted(str(m.id) for m in messages)
    assert sum(request.path == "/other" for request in received) == 1
    assert WebhookMessage.objects.filter(status=MessageStatus.DELIVERED).count() == 6


def test_redelivering_one_message_sends_the_same_bytes_again(endpoint, tenant, receiver):
    message = create_message(tenant.customer.id)
    webhook_message_deliver(message_id=message.id)
    assert webhook_redeliver(message_id=message.id, dispatch=False) == [message.id]
    deliver_due()
    first, second = receiver.wait_for_count(2)
    assert first.body == second.body
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED and message.attempts == 2
