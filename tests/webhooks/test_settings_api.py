"""GET/POST /settings, GET /settings/webhook, POST /settings/webhook/retry: auth, ping/pong, SSRF refusal,
isolation between customers."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from django.db import transaction

from tests.helpers.api import client_for
from tests.helpers.receiver import Reply
from tests.helpers.webhooks import create_message, deliver_due
from tests.webhooks.conftest import HANGING_HOST
from webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage


@pytest.mark.parametrize(
    "method, path",
    [("get", "/settings"), ("post", "/settings"), ("get", "/settings/webhook"), ("post", "/settings/webhook/retry")],
)
def test_every_settings_endpoint_requires_an_api_key(db, method, path):
    response = getattr(client_for(None), method)(path, {}, format="json")
    assert response.status_code == 401
    assert response.json()["name"] == "UnauthorizedError"
    assert getattr(client_for("mbk_bad_key"), method)(path, {}, format="json").status_code == 401


def test_settings_are_empty_before_a_url_is_set(api, tenant):
    assert api.get("/settings").json() == {"id": str(tenant.customer.id), "webhookUrl": None, "webhookKey": None}


def test_setting_a_url_generates_a_key_and_sends_a_signed_ping_answered_with_its_pong(api, tenant, receiver):
    url = f"{receiver.url}/hooks/metriport"
    response = api.post("/settings", {"webhookUrl": url}, format="json")
    assert response.status_code == 200, response.json()
    key = response.json()["webhookKey"]
    assert response.json() == {"id": str(tenant.customer.id), "webhookUrl": url, "webhookKey": key}
    assert key.startswith("whsec_")
    (ping,) = receiver.snapshot()
    assert ping.path == "/hooks/metriport"
    payload = ping.json()
    assert payload["meta"]["type"] == "ping" and set(payload["meta"]) == {"messageId", "when", "type"}
    assert payload["ping"]
    assert ping.headers["x-metriport-signature"] == hmac.new(key.encode(), ping.body, hashlib.sha256).hexdigest()
    assert api.get("/settings").json() == {"id": str(tenant.customer.id), "webhookUrl": url, "webhookKey": key}
    # Changing the URL keeps the key.
    second = api.post("/settings", {"webhookUrl": f"{receiver.url}/v2"}, format="json").json()
    assert second == {"id": str(tenant.customer.id), "webhookUrl": f"{receiver.url}/v2", "webhookKey": key}


def test_a_url_whose_receiver_does_not_answer_the_pong_is_refused(api, receiver):
    receiver.default = lambda item: Reply(body=b'{"ok":true}')
    response = api.post("/settings", {"webhookUrl": f"{receiver.url}/hook"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == 'The webhook URL answered the ping without {"pong": "<the ping value>"}.'
    assert api.get("/settings").json()["webhookUrl"] is None


def test_a_wrong_pong_is_refused(api, receiver):
    receiver.default = lambda item: Reply(body=b'{"pong":"something-else"}')
    assert api.post("/settings", {"webhookUrl": f"{receiver.url}/hook"}, format="json").status_code == 400


def test_a_url_answering_an_error_is_refused_with_the_status(api, receiver):
    receiver.replies = [Reply(status=500)]
    response = api.post("/settings", {"webhookUrl": f"{receiver.url}/hook"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "The webhook URL did not accept the ping (HTTP 500)."


def test_a_url_answering_too_slowly_is_refused(api, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    receiver.replies = [Reply(delay=2, body=b"{}")]
    response = api.post("/settings", {"webhookUrl": f"{receiver.url}/hook"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "The webhook URL did not accept the ping (timeout after 0.3s)."


def test_a_private_url_is_refused_without_any_request_when_private_urls_are_not_allowed(api, receiver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    response = api.post("/settings", {"webhookUrl": f"{receiver.url}/hook"}, format="json")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail.startswith("The webhook URL is refused: the address 127.0.0.1 is a loopback address")
    assert receiver.snapshot() == []
    response = api.post("/settings", {"webhookUrl": "http://169.254.169.254/latest/meta-data"}, format="json")
    assert response.status_code == 400 and "link-local" in response.json()["detail"]


@pytest.mark.parametrize(
    "url, detail",
    [
        (
            "http://[::ffff:127.0.0.1]/hook",
            "the address ::ffff:127.0.0.1 is an IPv4-mapped IPv6 address (::ffff:0:0/96) embedding 127.0.0.1, a "
            "loopback address; private and internal addresses are refused.",
        ),
        ("https://[2002:a9fe:a9fe::]/hook", "a 6to4 IPv6 address (2002::/16) embedding 169.254.169.254, a link-local"),
        ("https://[64:ff9b::a00:5]:8443/hook", "a NAT64 IPv6 address (64:ff9b::/96) embedding 10.0.0.5, a private"),
        ("http://[::7f00:1]/hook", "an IPv4-compatible IPv6 address (::/96, deprecated) embedding 127.0.0.1"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook", "a Teredo IPv6 address (2001::/32) whose client"),
    ],
)
def test_ipv6_literals_embedding_a_private_ipv4_are_refused_with_400_naming_the_form(
    api, receiver, settings, url, detail
):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    response = api.post("/settings", {"webhookUrl": url}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The webhook URL is refused: ")
    assert detail in response.json()["detail"]
    assert api.get("/settings").json()["webhookUrl"] is None
    assert receiver.snapshot() == []


def test_a_host_whose_lookup_hangs_is_refused_within_the_resolve_bound(api, settings, hanging_dns, monkeypatch):
    from metriport_bulk.lib import http

    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    monkeypatch.setattr(http, "RESOLVE_TIMEOUT_SECONDS", 0.5)
    response = api.post("/settings", {"webhookUrl": f"https://{HANGING_HOST}/hook"}, format="json")
    assert response.status_code == 400
    assert (
        response.json()["detail"] == f"The webhook URL is refused: could not resolve host {HANGING_HOST} within 0.5 s."
    )


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "not a url", "https://user:pw@example.com/hook"])
def test_malformed_urls_are_refused(api, url):
    response = api.post("/settings", {"webhookUrl": url}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The webhook URL is refused:")


def test_the_url_field_is_required(api):
    response = api.post("/settings", {}, format="json")
    assert response.status_code == 400 and "webhookUrl" in response.json()["detail"]


@pytest.mark.parametrize("empty", [None, "", "   "])
def test_an_empty_url_clears_it_and_keeps_the_key(api, tenant, receiver, empty):
    key = api.post("/settings", {"webhookUrl": f"{receiver.url}/hook"}, format="json").json()["webhookKey"]
    response = api.post("/settings", {"webhookUrl": empty}, format="json")
    assert response.status_code == 200
    assert response.json() == {"id": str(tenant.customer.id), "webhookUrl": None, "webhookKey": key}
    assert len(receiver.snapshot()) == 1  # clearing sends no ping


def test_another_customers_settings_and_health_are_never_visible(api, tenant, other_tenant, receiver):
    api.post("/settings", {"webhookUrl": f"{receiver.url}/hook"}, format="json")
    receiver.replies = [Reply(status=500)]
    from webhooks.services import webhook_message_deliver

    webhook_message_deliver(message_id=create_message(tenant.customer.id).id)
    other = client_for(other_tenant.api_key)
    assert other.get("/settings").json() == {
        "id": str(other_tenant.customer.id),
        "webhookUrl": None,
        "webhookKey": None,
    }
    health = other.get("/settings/webhook").json()
    assert health["status"] == "not-configured"
    assert (health["webhookEnabled"], health["webhookRequestsProcessing"], health["webhookRequestsFailed"]) == (
        False,
        0,
        0,
    )
    assert "webhookStatusDetail" not in health
    assert (health["pending"], health["failing"], health["failed"]) == (0, 0, 0)
    assert health["lastFailureAt"] is None and health["lastError"] is None
    assert other.post("/settings/webhook/retry").json() == {"retried": 0}
    assert WebhookMessage.objects.get().failures == 1  # untouched by the other customer's retry


def test_health_reports_last_success_failures_and_pending_counts(api, tenant, receiver):
    assert api.get("/settings/webhook").json()["status"] == "not-configured"
    api.post("/settings", {"webhookUrl": f"{receiver.url}/hook"}, format="json")
    ok = create_message(tenant.customer.id)
    deliver_due()
    receiver.replies = [Reply(status=503)]
    failing = create_message(tenant.customer.id)
    deliver_due()
    given_up = create_message(tenant.customer.id)
    WebhookMessage.objects.filter(id=given_up.id).update(status=MessageStatus.FAILED, next_attempt_at=None)
    create_message(tenant.customer.id)  # waiting for its first attempt (not delivered yet)
    WebhookMessage.objects.filter(status=MessageStatus.PENDING, failures=0).update(
        next_attempt_at="2999-01-01T00:00:00Z"
    )
    health = api.get("/settings/webhook").json()
    assert health["webhookUrl"] == f"{receiver.url}/hook"
    assert health["status"] == "failing"
    assert health["webhookEnabled"] is True and health["webhookStatusDetail"] == health["lastError"]
    assert (health["webhookRequestsProcessing"], health["webhookRequestsFailed"]) == (2, 1)
    assert (health["pending"], health["failing"], health["failed"]) == (2, 1, 1)
    assert health["lastSuccessAt"] and health["lastFailureAt"]
    assert health["lastError"] == "HTTP 503"
    assert WebhookMessage.objects.get(id=ok.id).status == MessageStatus.DELIVERED
    assert WebhookMessage.objects.get(id=failing.id).failures == 1


def test_retry_redelivers_the_failed_and_failing_messages_now(
    api, tenant, receiver, django_capture_on_commit_callbacks
):
    api.post("/settings", {"webhookUrl": f"{receiver.url}/hook"}, format="json")
    failed = create_message(tenant.customer.id)
    WebhookMessage.objects.filter(id=failed.id).update(status=MessageStatus.FAILED, next_attempt_at=None, failures=40)
    delivered = create_message(tenant.customer.id)
    deliver_due()
    assert WebhookMessage.objects.get(id=failed.id).status == MessageStatus.FAILED
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post("/settings/webhook/retry")
    assert response.status_code == 200 and response.json() == {"retried": 1}
    assert len(callbacks) == 1  # the fast path is queued on commit
    deliver_due()
    message = WebhookMessage.objects.get(id=failed.id)
    assert message.status == MessageStatus.DELIVERED and message.failures == 0
    bodies = [request.body for request in receiver.snapshot()]
    assert bodies.count(bytes(failed.body)) == 1 and bodies.count(bytes(delivered.body)) == 1


def test_messages_are_only_created_for_customers_with_a_url(tenant, other_tenant, receiver):
    WebhookEndpoint.objects.create(customer=tenant.customer, url=f"{receiver.url}/hook", key="k")
    with transaction.atomic():
        assert create_message(other_tenant.customer.id) is None
        assert create_message(tenant.customer.id) is not None
    assert WebhookMessage.objects.filter(customer=other_tenant.customer).count() == 0


def test_an_endless_ping_answer_is_not_read_and_the_url_is_refused(api, receiver):
    receiver.default = lambda item: Reply(body=b'{"pong":"' + b"x" * 200_000 + b'"}')
    response = api.post("/settings", {"webhookUrl": f"{receiver.url}/hook"}, format="json")
    assert response.status_code == 400
    assert "pong" in response.json()["detail"]
