"""The bulk flow's webhooks, end to end: set through POST /settings (ping/pong), delivered by the real worker
to a real local receiver, signed, carrying ids only, redelivered with identical bytes after a failure."""

from __future__ import annotations

import hashlib
import hmac

import pytest
import requests

from tests.helpers.api import Api
from tests.helpers.bulk import csv_bytes, person, read_result, sample_bytes
from tests.helpers.receiver import Reply

pytestmark = pytest.mark.django_db(transaction=True)

BULK = "medical.bulk-patient-create"


@pytest.fixture
def subscribed(live_server, tenant, pipeline, settings, receiver):
    settings.PUBLIC_BASE_URL = live_server.url
    api = Api(live_server.url, tenant.api_key)
    answer = api.session.post(f"{live_server.url}/settings", json={"webhookUrl": receiver.url}, timeout=30)
    assert answer.status_code == 200, answer.text
    key = answer.json()["webhookKey"]
    assert receiver.received and receiver.received[0].json()["meta"]["type"] == "ping"
    return api, key


def bulk_messages(receiver, request_id: str, count: int, timeout: float = 30.0) -> list:
    def matching(items):
        return [
            i
            for i in items
            if i.body
            and i.json().get("meta", {}).get("type") == BULK
            and i.json()["meta"].get("requestId") == request_id
        ]

    receiver.wait_for(
        lambda items: len({m.json()["meta"]["messageId"] for m in matching(items)}) >= count, timeout=timeout
    )
    return matching(receiver.received)


def test_processing_then_completed_signed_with_result_url(subscribed, receiver):
    api, key = subscribed
    body = sample_bytes(60, invalid_ratio=0.1, seed=4)
    final = api.run(body)
    messages = bulk_messages(receiver, final["requestId"], 2)
    payloads = [m.json() for m in messages]
    assert [p["bulkPatientCreate"]["status"] for p in payloads] == ["processing", "completed"]
    for message, payload in zip(messages, payloads, strict=True):
        expected = hmac.new(key.encode(), message.body, hashlib.sha256).hexdigest()
        assert message.headers["x-metriport-signature"] == expected
        assert message.headers["user-agent"] == "metriport-bulk"
        assert set(payload) == {"meta", "bulkPatientCreate"}
        assert set(payload["meta"]) == {"messageId", "requestId", "when", "type"}
        assert payload["bulkPatientCreate"]["requestId"] == final["requestId"]
    assert payloads[0]["bulkPatientCreate"]["result"] is None
    rows = read_result(payloads[1]["bulkPatientCreate"]["result"])
    assert len(rows) == 60
    # Ids and statuses only: no value of the file appears in any payload.
    everything = b"".join(m.body for m in receiver.received).decode()
    for row in rows:
        for column in ("firstName", "lastName", "dob", "addressLine1", "email-1", "ssn"):
            value = (row.get(column) or "").strip()
            if len(value) > 3:
                assert value not in everything


def test_failed_request_webhook_carries_the_reason(subscribed, receiver):
    api, _ = subscribed
    final = api.run(b"firstName,lastName\nAnn,Doe\n")
    payload = bulk_messages(receiver, final["requestId"], 2)[-1].json()
    assert payload["bulkPatientCreate"]["status"] == "failed"
    assert payload["bulkPatientCreate"]["result"] is None
    assert payload["bulkPatientCreate"]["reason"] == final["reason"]


def test_receiver_down_then_up_gets_each_message_once_logically(subscribed, receiver, settings):
    api, _ = subscribed
    receiver.replies.extend([Reply(status=500), Reply(status=503)])
    final = api.run(csv_bytes([person("Ann")]))
    bulk_messages(receiver, final["requestId"], 2)
    # The first attempts failed (500, 503) and are retried after their backoff; `completed` waits until
    # `processing` is delivered (order), then each is accepted.
    receiver.wait_for(
        lambda items: any(b'"status":"completed"' in i.body for i in items if BULK.encode() in i.body), timeout=90
    )
    messages = bulk_messages(receiver, final["requestId"], 2)
    by_id: dict[str, set[bytes]] = {}
    for message in messages:
        by_id.setdefault(message.json()["meta"]["messageId"], set()).add(message.body)
    assert len(by_id) == 2  # processing and completed, each one logical message
    assert all(len(bodies) == 1 for bodies in by_id.values())  # retried attempts are byte-identical
    order = [m.json()["bulkPatientCreate"]["status"] for m in messages]
    assert order.index("completed") > max(i for i, status in enumerate(order) if status == "processing")
    assert order.count("completed") == 1 and 2 <= len(order) <= 4  # failed attempts, one success each


def test_dry_run_webhook_and_no_document_download(subscribed, receiver):
    api, _ = subscribed
    final = api.run(csv_bytes([person("Ann")]), dryRun="true")
    bulk_messages(receiver, final["requestId"], 2)
    types = {m.json()["meta"]["type"] for m in receiver.received if m.body}
    assert "medical.document-download" not in types
    assert requests.get(final["result"], timeout=10).status_code == 200
