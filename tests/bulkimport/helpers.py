"""Helpers for bulk pipeline tests: build CSVs, drive a request through HTTP, wait for it."""

from __future__ import annotations

import csv
import io
import time

import requests

from bulkimport.models import BulkRequest
from bulkimport.sample import write_sample_csv

HEADER = ["firstName", "lastName", "dob", "gender", "addressLine1", "city", "state", "zip", "hieOptOut", "externalId"]


def csv_bytes(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def person(
    first: str,
    last: str = "Doe",
    dob: str = "1980-01-02",
    gender: str = "F",
    zip_code: str = "10001",
    opt_out: str = "",
    ext: str = "",
) -> list[str]:
    return [first, last, dob, gender, "1 Main St", "New York", "NY", zip_code, opt_out, ext]


def sample_bytes(rows: int, invalid_ratio: float = 0.1, seed: int = 3) -> bytes:
    out = io.BytesIO()
    write_sample_csv(out, rows, invalid_ratio=invalid_ratio, seed=seed)
    return out.getvalue()


def wait_final(request_id, timeout: float = 60.0) -> BulkRequest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = BulkRequest.objects.get(id=request_id)
        if request.status in ("completed", "failed", "expired"):
            return request
        time.sleep(0.1)
    raise AssertionError(f"bulk request still {request.status}/{request.phase} after {timeout}s")


def wait_status(request_id, status: str, timeout: float = 30.0) -> BulkRequest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = BulkRequest.objects.get(id=request_id)
        if request.status == status:
            return request
        time.sleep(0.05)
    raise AssertionError(f"bulk request is {request.status}, not {status}, after {timeout}s")


def read_result(url: str) -> list[dict]:
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8"))))


class Api:
    """The customer's view: real HTTP against the live server."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["x-api-key"] = api_key

    def create(self, **params) -> requests.Response:
        return self.session.post(f"{self.base_url}/medical/v1/patient/bulk", params=params, timeout=30)

    def get(self, request_id) -> requests.Response:
        return self.session.get(f"{self.base_url}/medical/v1/patient/bulk/{request_id}", timeout=30)

    def run(self, body: bytes, timeout: float = 90.0, **params) -> dict:
        created = self.create(**params)
        assert created.status_code == 200, created.text
        upload = requests.put(created.json()["uploadUrl"], data=body, timeout=60)
        assert upload.status_code == 200, upload.text
        wait_final(created.json()["requestId"], timeout=timeout)
        return self.get(created.json()["requestId"]).json()
