"""Hostile and absurd uploads (huge cells, huge lines, a million commas, limits) through the real pipeline
(S3 upload, worker, scheduler): each ends, within seconds, `failed` with a reason a customer can act on or
`completed` with the offending rows failed, never a 500, a hang or a patient from a refused file."""

from __future__ import annotations

import csv
import time

import pytest
import requests

from bulkimport.models import BulkRow, BulkStatus
from patients.models import Patient
from tests.helpers.bulk import wait_final

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = b"firstName,lastName,dob,gender,addressLine1,city,state,zip\n"
ROW = b"Ann,Doe,1980-01-02,F,1 Main St,New York,NY,10001\n"
FIVE_MB = 5 * 1024 * 1024
MILLION = 1_000_000


def _upload(api, body: bytes) -> tuple[dict, float]:
    created = api.create()
    assert created.status_code == 200, created.text
    started = time.monotonic()
    assert requests.put(created.json()["uploadUrl"], data=body, timeout=60).status_code == 200
    wait_final(created.json()["requestId"], timeout=60)
    response = api.get(created.json()["requestId"])
    assert response.status_code == 200, response.text  # the API never answers 500 about a hostile file
    return response.json(), time.monotonic() - started


# body, the reason's expected words
REFUSED_FILES = {
    "5 MB cell, unquoted": (HEADER + b"A" * FIVE_MB + b",Doe,1980-01-02,F,1 Main St,New York,NY,10001\n", "128 KB"),
    "5 MB cell, quoted": (HEADER + b'"' + b"A" * FIVE_MB + b'",Doe,1980-01-02,F,1 Main St,NY,NY,10001\n', "128 KB"),
    "5 MB header cell": (b"firstName," + b"B" * FIVE_MB + b"\n" + ROW, "128 KB"),
    "quote never closed over 5 MB": (HEADER + ROW + b'"' + b"a,b\n" * (FIVE_MB // 4), "quote"),
    "5 million blank lines": (HEADER + b"\n" * (5 * MILLION), "no patient rows"),
    "a million commas, no header names": (b"," * MILLION + b"\n" + ROW, "column"),
    "invalid UTF-8 after 1,000 rows": (HEADER + ROW * 1000 + b"Jos\xe9,Doe,1980-01-02,M,1 A St,X,NY,10001\n", "UTF-8"),
    "NUL bytes after 1,000 rows": (HEADER + ROW * 1000 + b"\x00" * 100 + b"\n", "binary"),
}


@pytest.mark.parametrize("case", list(REFUSED_FILES))
def test_hostile_file_fails_cleanly_with_a_reason(customer_api, case):
    body, reason_words = REFUSED_FILES[case]
    final, seconds = _upload(customer_api, body)
    assert final["status"] == BulkStatus.FAILED, final
    assert reason_words.lower() in final["reason"].lower(), final["reason"]
    assert len(final["reason"]) < 500 and "AAAA" not in final["reason"] and "BBBB" not in final["reason"]
    assert final["result"] is None
    assert not Patient.objects.exists()
    assert not BulkRow.objects.filter(request_id=final["requestId"]).exists()
    assert seconds < 30, f"{case} took {seconds:.1f}s"


def test_a_million_commas_in_one_row_fail_that_row_only(customer_api):
    body = (
        HEADER
        + ROW
        + b"Bob,Roe,1970-03-04,M,2 Elm St,Boston,MA,02110"
        + b",x" * (MILLION // 2)
        + b"\n"
        + ROW.replace(b"Ann", b"Cy")
    )
    final, seconds = _upload(customer_api, body)
    assert final["status"] == BulkStatus.COMPLETED, final
    assert (final["total"], final["successful"], final["failed"]) == (3, 2, 1)
    result = requests.get(final["result"], timeout=30)
    lines = result.content.decode().splitlines()
    assert len(lines) == 4
    # The result line is cut to the header's width: the million cells do not come back.
    assert len(result.content) < 10_000
    row = dict(zip(next(csv.reader([lines[0]])), next(csv.reader([lines[2]])), strict=True))
    assert row["status"] == "failed" and row["errorCode"] == "too_many_cells", row
    assert "header has 8" in row["reason"] and lines[2].count(",") < 30
    assert seconds < 30


def test_a_five_megabyte_line_of_commas_fails_that_row_only(customer_api):
    body = HEADER + ROW + b"x," * (FIVE_MB // 2) + b"\n"
    final, seconds = _upload(customer_api, body)
    assert final["status"] == BulkStatus.COMPLETED, final
    assert (final["successful"], final["failed"]) == (1, 1)
    assert len(requests.get(final["result"], timeout=30).content) < 10_000
    assert seconds < 30


def test_a_million_trailing_empty_cells_lose_nothing(customer_api):
    final, seconds = _upload(customer_api, HEADER + ROW[:-1] + b"," * MILLION + b"\n")
    assert final["status"] == BulkStatus.COMPLETED and final["successful"] == 1, final
    assert len(requests.get(final["result"], timeout=30).content) < 10_000
    assert seconds < 30


def test_more_rows_than_the_limit_fail_the_request_and_create_nothing(customer_api, settings):
    settings.BULK_MAX_ROWS = 100
    final, _ = _upload(customer_api, HEADER + ROW * 101)
    assert final["status"] == BulkStatus.FAILED
    assert "more than 100 patient rows" in final["reason"]
    assert not Patient.objects.exists()
    assert not BulkRow.objects.filter(request_id=final["requestId"]).exists()


def test_a_file_above_the_size_limit_fails_the_request(customer_api, settings):
    settings.BULK_MAX_FILE_BYTES = 10_000
    final, _ = _upload(customer_api, HEADER + ROW * 400)  # about 20 KB
    assert final["status"] == BulkStatus.FAILED
    assert "limit" in final["reason"] and "split" in final["reason"]
    assert not Patient.objects.exists()


def test_a_wide_header_cannot_amplify_the_result_file(customer_api):
    """Regression: a header of 1,000,000 unnamed columns padded every result row to that width, so a 1 MB
    header plus N short rows wrote an N MB result file (100,000 rows: ~100 GB)."""
    body = HEADER[:-1] + b"," * MILLION + b"\n" + ROW * 30
    final, _ = _upload(customer_api, body)
    if final["status"] == BulkStatus.FAILED:
        assert "column" in final["reason"].lower()
        return
    result = requests.get(final["result"], timeout=60).content
    assert len(result) <= 2 * len(body), f"{len(body):,} bytes in, {len(result):,} bytes of result"


def test_trailing_empty_cells_are_not_stored(customer_api):
    final, _ = _upload(customer_api, HEADER + (ROW[:-1] + b"," * MILLION + b"\n") * 3)
    assert final["status"] == BulkStatus.COMPLETED and final["successful"] == 3, final
    widths = [len(raw) for raw in BulkRow.objects.filter(request_id=final["requestId"]).values_list("raw", flat=True)]
    assert widths == [8, 8, 8], f"stored rows of {widths} cells for a header of 8"
