"""The embedded default's upload URL (local storage): signed token, single use, expiry, tampering, size."""

from __future__ import annotations

import json

import pytest
import requests

from bulkimport.models import BulkRequest, BulkStatus
from patients.models import Patient
from tests.helpers.api import Api
from tests.helpers.bulk import csv_bytes, person, read_result, wait_final
from tests.helpers.clock import signer_clock
from webhooks.models import WebhookEndpoint, WebhookMessage
from webhooks.signing import webhook_key_generate

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def local_api(live_server, tenant, pipeline, settings, tmp_path):
    settings.PUBLIC_BASE_URL = live_server.url
    settings.S3_BUCKET = ""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": tmp_path}},
    }
    return Api(live_server.url, tenant.api_key)


def test_local_flow_end_to_end(local_api, live_server):
    created = local_api.create().json()
    assert created["uploadUrl"].startswith(f"{live_server.url}/uploads/bulk/")
    assert (
        requests.put(created["uploadUrl"], data=csv_bytes([person("Ann"), person("Bob")]), timeout=30).status_code
        == 200
    )
    wait_final(created["requestId"])
    final = local_api.get(created["requestId"]).json()
    assert final["status"] == "completed" and final["successful"] == 2
    assert final["result"].startswith(f"{live_server.url}/files/")
    assert [r["firstName"] for r in read_result(final["result"])] == ["Ann", "Bob"]


def test_second_put_is_409_and_first_upload_wins(local_api):
    created = local_api.create().json()
    assert requests.put(created["uploadUrl"], data=csv_bytes([person("First")]), timeout=30).status_code == 200
    second = requests.put(created["uploadUrl"], data=csv_bytes([person("Second")]), timeout=30)
    assert second.status_code == 409 and second.json()["name"] == "ConflictError"
    wait_final(created["requestId"])
    assert [r["firstName"] for r in read_result(local_api.get(created["requestId"]).json()["result"])] == ["First"]


def test_tampered_token_is_403(local_api):
    created = local_api.create().json()
    tampered = created["uploadUrl"][:-3] + ("AAA" if not created["uploadUrl"].endswith("AAA") else "BBB")
    response = requests.put(tampered, data=csv_bytes([person("Eve")]), timeout=30)
    assert response.status_code == 403 and response.json()["detail"] == "The upload URL is not valid."
    assert BulkRequest.objects.get(id=created["requestId"]).status == BulkStatus.WAITING


def test_expired_url_is_403(local_api, settings):
    with signer_clock(offset_seconds=-10):
        created = local_api.create().json()
    settings.UPLOAD_URL_EXPIRY_SECONDS = 0
    response = requests.put(created["uploadUrl"], data=csv_bytes([person("Late")]), timeout=30)
    assert response.status_code == 403 and "expired" in response.json()["detail"]
    assert not Patient.objects.exists()


def test_too_large_upload_fails_the_request_with_reason(local_api, settings, tenant, receiver):
    """Refused before processing: waiting -> failed with one `failed` webhook, never `processing`, no parse."""
    WebhookEndpoint.objects.create(customer=tenant.customer, url=receiver.url, key=webhook_key_generate())
    settings.BULK_MAX_FILE_BYTES = 1000
    created = local_api.create().json()
    response = requests.put(created["uploadUrl"], data=b"x" * 5000, timeout=30)
    assert response.status_code == 413
    assert response.json()["detail"] == "The file is 4.9 KB, above the 1,000 bytes limit: split it into smaller files."
    final = local_api.get(created["requestId"]).json()
    assert final["status"] == "failed" and final["reason"] == response.json()["detail"]
    request = BulkRequest.objects.get(id=created["requestId"])
    assert request.started_at is None and request.input_size == 5000
    statuses = [
        json.loads(body)["bulkPatientCreate"]["status"]
        for body in WebhookMessage.objects.filter(customer=tenant.customer).values_list("body", flat=True)
    ]
    assert statuses == ["failed"]


def test_missing_content_length_is_411(local_api):
    created = local_api.create().json()

    def chunks():
        yield csv_bytes([person("Ann")])

    response = requests.put(created["uploadUrl"], data=chunks(), timeout=30)  # chunked: no Content-Length
    assert response.status_code == 411


def test_download_token_tampered_or_expired(local_api, settings):
    final = local_api.run(csv_bytes([person("Ann")]))
    assert requests.get(final["result"] + "x", timeout=10).status_code == 403
    settings.RESULT_URL_EXPIRY_SECONDS = 0
    with signer_clock(offset_seconds=-10):
        url = local_api.get(final["requestId"]).json()["result"]
    assert requests.get(url, timeout=10).status_code == 403


def test_upload_cut_short_is_refused_and_the_url_stays_usable(local_api, live_server):
    import socket
    from urllib.parse import urlsplit

    created = local_api.create().json()
    path = urlsplit(created["uploadUrl"]).path
    body = csv_bytes([person("Ann")])
    with socket.create_connection((live_server.thread.host, live_server.thread.port), timeout=10) as sock:
        head = f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body) + 100}\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)  # the client goes away 100 bytes early
        answer = sock.recv(4096).decode(errors="replace")
    assert " 400 " in answer.splitlines()[0], answer
    assert BulkRequest.objects.get(id=created["requestId"]).status == BulkStatus.WAITING
    assert requests.put(created["uploadUrl"], data=body, timeout=30).status_code == 200
