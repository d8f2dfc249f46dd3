"""Headers no real client sends, on the real live server: a 4xx envelope, never a 500, nothing stored, and the
bulk request still usable."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

from bulkimport.models import BulkRequest, BulkStatus
from tests.helpers.bulk import csv_bytes, person, wait_final

pytestmark = pytest.mark.django_db(transaction=True)


def _raw_request(live_server, head: str, body: bytes) -> tuple[int, dict]:
    """One request with headers of our choosing (requests would send the true Content-Length)."""
    with socket.create_connection((live_server.thread.host, live_server.thread.port), timeout=10) as sock:
        sock.sendall(f"{head}\r\nHost: x\r\nConnection: close\r\n\r\n".encode() + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, payload = answer.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload)


@pytest.mark.parametrize("content_length", [str(2**63), "9" * 40])
def test_absurd_content_length_on_the_local_upload_is_400_and_the_request_stays_waiting(
    local_api, live_server, tmp_path, content_length
):
    created = local_api.create().json()
    path = urlsplit(created["uploadUrl"]).path
    body = csv_bytes([person("Ann")])
    status, answer = _raw_request(live_server, f"PUT {path} HTTP/1.1\r\nContent-Length: {content_length}", body)
    assert status == 400 and answer["name"] == "BadRequestError" and "Content-Length" in answer["detail"]
    request = BulkRequest.objects.get(id=created["requestId"])
    assert request.status == BulkStatus.WAITING and request.input_size is None
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no half-written file
    assert requests.put(created["uploadUrl"], data=body, timeout=30).status_code == 200
    assert wait_final(created["requestId"]).status == BulkStatus.COMPLETED


def test_absurd_content_length_on_the_api_is_413(customer_api, live_server):
    api_key = customer_api.session.headers["x-api-key"]
    head = (
        f"POST /medical/v1/facility HTTP/1.1\r\nx-api-key: {api_key}\r\nContent-Type: application/json"
        f"\r\nContent-Length: {2**63}"
    )
    status, answer = _raw_request(live_server, head, b"{}")
    assert status == 413 and answer["name"] == "PayloadTooLargeError"
