"""Upload and result URLs are credentials (SPEC §3): tampered, expired and reused ones are refused, and a
refused one never changes a request. S3 (SeaweedFS, boto3 pre-signed) and the local signed URL."""

from __future__ import annotations

import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests
from django.core import signing

from bulkimport import services
from bulkimport.models import BulkRequest, BulkRow, BulkStatus
from metriport_bulk.lib import storage
from patients.models import Patient
from tests.helpers.api import Api
from tests.helpers.bulk import csv_bytes, person, read_result, wait_final, wait_status
from tests.helpers.clock import signer_clock
from tests.helpers.runtime import wait_scheduler_rounds

pytestmark = pytest.mark.django_db(transaction=True)


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _flip(text: str, position: int) -> str:
    return text[:position] + ("A" if text[position] != "A" else "B") + text[position + 1 :]


def _assert_untouched(request_id) -> None:
    """A refused upload left nothing behind: still waiting, no object at the upload key, no rows."""
    request = BulkRequest.objects.get(id=request_id)
    assert request.status == BulkStatus.WAITING, request.status
    assert storage.object_size(request.upload_key) is None
    assert not BulkRow.objects.filter(request_id=request_id).exists()


# --- S3 pre-signed URLs (SeaweedFS) ---------------------------------------------------------------------


def _tampered_s3_urls(url: str, own_key: str, other_key: str) -> dict[str, str]:
    query = dict(parse_qsl(urlsplit(url).query))
    signature = query["X-Amz-Signature"]
    return {
        "signature changed": _with_query(url, **{"X-Amz-Signature": _flip(signature, 5)}),
        "signature removed": _with_query(url, **{"X-Amz-Signature": ""}),
        "expiry lengthened": _with_query(url, **{"X-Amz-Expires": "604800"}),
        "date moved": _with_query(url, **{"X-Amz-Date": "20990101T000000Z"}),
        "credential changed": _with_query(url, **{"X-Amz-Credential": query["X-Amz-Credential"].replace("/", "x/", 1)}),
        "other request's key": url.replace(own_key, other_key),
        "key outside the request": url.replace("upload.csv", "input.csv"),
    }


def test_tampered_s3_upload_urls_are_refused_and_change_nothing(customer_api, other_api, tenant):
    created = customer_api.create().json()
    other = other_api.create().json()
    own_key = BulkRequest.objects.get(id=created["requestId"]).upload_key
    other_key = BulkRequest.objects.get(id=other["requestId"]).upload_key
    assert own_key in created["uploadUrl"]
    for name, url in _tampered_s3_urls(created["uploadUrl"], own_key, other_key).items():
        response = requests.put(url, data=csv_bytes([person("Eve")]), timeout=30)
        # S3 refuses a bad signature with 403, a malformed one (signature removed) with 400.
        assert response.status_code in (400, 403), (name, response.status_code)
    # The URL is for PUT only: it neither reads nor deletes.
    assert requests.get(created["uploadUrl"], timeout=30).status_code == 403
    assert requests.delete(created["uploadUrl"], timeout=30).status_code == 403
    wait_scheduler_rounds(2)  # the upload polling ran: a refused upload must not be noticed
    _assert_untouched(created["requestId"])
    _assert_untouched(other["requestId"])
    # The genuine URL still works afterwards.
    assert requests.put(created["uploadUrl"], data=csv_bytes([person("Ann")]), timeout=30).status_code == 200
    assert wait_final(created["requestId"]).status == BulkStatus.COMPLETED


def test_expired_s3_upload_url_is_refused(customer_api, settings):
    settings.UPLOAD_URL_EXPIRY_SECONDS = 1
    with signer_clock(offset_seconds=-10):  # signed 10 s ago: expired for the S3 server's real clock
        created = customer_api.create().json()
    assert "X-Amz-Expires=1" in created["uploadUrl"]
    response = requests.put(created["uploadUrl"], data=csv_bytes([person("Late")]), timeout=30)
    assert response.status_code == 403
    assert wait_final(created["requestId"], timeout=15).status == BulkStatus.EXPIRED
    assert storage.object_size(BulkRequest.objects.get(id=created["requestId"]).upload_key) is None
    assert not Patient.objects.exists()


def test_reused_s3_upload_url_after_completion_changes_nothing(customer_api, tenant):
    created = customer_api.create().json()
    assert requests.put(created["uploadUrl"], data=csv_bytes([person("First")]), timeout=30).status_code == 200
    final = wait_final(created["requestId"])
    assert final.status == BulkStatus.COMPLETED
    result_before = read_result(customer_api.get(created["requestId"]).json()["result"])
    # S3 accepts a second PUT while the URL is valid; the service must ignore it.
    assert (
        requests.put(created["uploadUrl"], data=csv_bytes([person("Second"), person("Third")]), timeout=30).status_code
        == 200
    )
    wait_scheduler_rounds(2)  # the upload polling ran: the second upload must not be noticed
    after = BulkRequest.objects.get(id=created["requestId"])
    assert (after.status, after.finished_at, after.total) == (BulkStatus.COMPLETED, final.finished_at, 1)
    assert read_result(customer_api.get(created["requestId"]).json()["result"]) == result_before
    assert list(Patient.objects.values_list("first_name", flat=True)) == ["First"]
    assert BulkRow.objects.filter(request_id=created["requestId"]).count() == 1


def test_s3_result_url_is_read_only_and_tamper_proof(customer_api):
    final = customer_api.run(csv_bytes([person("Ann")]))
    url = final["result"]
    assert requests.get(url, timeout=30).status_code == 200
    signature = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    refused = {
        "signature changed": requests.get(_with_query(url, **{"X-Amz-Signature": _flip(signature, 3)}), timeout=30),
        "expiry lengthened": requests.get(_with_query(url, **{"X-Amz-Expires": "604800"}), timeout=30),
        "input file instead": requests.get(url.replace("result.csv", "input.csv"), timeout=30),
        "overwrite with PUT": requests.put(url, data=b"firstName\n=evil()\n", timeout=30),
        "DELETE": requests.delete(url, timeout=30),
    }
    assert {name: response.status_code for name, response in refused.items()} == dict.fromkeys(refused, 403)
    assert read_result(url)[0]["firstName"] == "Ann"


# --- local signed URLs (embedded default) ---------------------------------------------------------------


def _token(url: str) -> str:
    return urlsplit(url).path.rsplit("/", 1)[1]


def test_tampered_local_upload_tokens_are_403_and_change_nothing(local_api, settings):
    created = local_api.create().json()
    url = created["uploadUrl"]
    token = _token(url)
    base = url[: -len(token)]
    payload = {"r": created["requestId"]}
    forged = {
        "signature flipped": token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "payload flipped": _flip(token, 2),
        "truncated": token[: len(token) // 2],
        "empty signature": token.rsplit(":", 1)[0] + ":",
        "other salt (a download token)": signing.dumps(payload, salt=storage.DOWNLOAD_SALT),
        "other secret key": signing.dumps(payload, key="not-the-secret-key", salt=services.UPLOAD_SALT),
        "unsigned payload": signing.b64_encode(b'{"r":"' + created["requestId"].encode() + b'"}').decode(),
    }
    for name, value in forged.items():
        response = requests.put(base + value, data=csv_bytes([person("Eve")]), timeout=30)
        assert response.status_code == 403, (name, response.status_code, response.text)
        assert response.json()["name"] == "ForbiddenError"
    request = BulkRequest.objects.get(id=created["requestId"])
    assert request.status == BulkStatus.WAITING and not request.input_key
    assert not BulkRow.objects.exists() and not Patient.objects.exists()


def test_validly_signed_token_of_an_unknown_request_is_403(local_api):
    import uuid

    token = signing.dumps({"r": str(uuid.uuid4())}, salt=services.UPLOAD_SALT)
    response = requests.put(f"{local_api.base_url}/uploads/bulk/{token}", data=csv_bytes([person("Eve")]), timeout=30)
    assert response.status_code == 403 and response.json()["name"] == "ForbiddenError"


def test_expired_local_upload_url_is_403(local_api, settings):
    settings.UPLOAD_URL_EXPIRY_SECONDS = 1
    with signer_clock(offset_seconds=-10):
        created = local_api.create().json()
    response = requests.put(created["uploadUrl"], data=csv_bytes([person("Late")]), timeout=30)
    assert response.status_code == 403 and "expired" in response.json()["detail"]
    assert not BulkRow.objects.exists() and not Patient.objects.exists()


def test_local_upload_url_is_single_use_even_under_a_race(local_api):
    created = local_api.create().json()
    barrier = threading.Barrier(2)
    statuses: dict[str, int] = {}

    def upload(name: str) -> None:
        body = csv_bytes([person(name)])
        barrier.wait()
        statuses[name] = requests.put(created["uploadUrl"], data=body, timeout=30).status_code

    threads = [threading.Thread(target=upload, args=(name,)) for name in ("Left", "Right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses.values()) == [200, 409], statuses
    winner = next(name for name, status in statuses.items() if status == 200)
    wait_final(created["requestId"])
    result = read_result(local_api.get(created["requestId"]).json()["result"])
    assert [row["firstName"] for row in result] == [winner]
    # Reused after completion: still refused, and the result is unchanged.
    again = requests.put(created["uploadUrl"], data=csv_bytes([person("Late")]), timeout=30)
    assert again.status_code == 409 and again.json()["name"] == "ConflictError"
    assert read_result(local_api.get(created["requestId"]).json()["result"]) == result
    assert list(Patient.objects.values_list("first_name", flat=True)) == [winner]


def test_local_download_token_cannot_be_forged_or_swapped(local_api, tenant):
    final = local_api.run(csv_bytes([person("Ann")]))
    url = final["result"]
    token = _token(url)
    base = url[: -len(token)]
    request = BulkRequest.objects.get(id=final["requestId"])
    forged = {
        "signature flipped": token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        "upload token as download token": signing.dumps({"r": str(request.id)}, salt=services.UPLOAD_SALT),
        "other secret key": signing.dumps(
            {"k": request.input_key, "f": "x.csv", "e": 600},
            key="not-the-secret-key",
            salt=storage.DOWNLOAD_SALT,
            compress=True,
        ),
    }
    for name, value in forged.items():
        response = requests.get(base + value, timeout=30)
        assert response.status_code == 403, (name, response.status_code)
    # A download token is no upload token either.
    assert requests.put(f"{local_api.base_url}/uploads/bulk/{token}", data=b"x", timeout=30).status_code == 403
    assert requests.get(url, timeout=30).status_code == 200


def test_another_customers_upload_url_cannot_reach_my_request(local_api, live_server, other_tenant):
    mine = local_api.create().json()
    theirs = Api(live_server.url, other_tenant.api_key).create().json()
    # The token names its request; swapping the request id inside would need the secret key.
    assert requests.put(theirs["uploadUrl"], data=csv_bytes([person("Zed")]), timeout=30).status_code == 200
    wait_status(theirs["requestId"], BulkStatus.PROCESSING)
    assert BulkRequest.objects.get(id=mine["requestId"]).status == BulkStatus.WAITING
