"""Bulk pipeline helpers: build CSVs, submit a request, run its steps inline, wait for it, read its result."""

from __future__ import annotations

import csv
import io
import time

import requests
from django.test import override_settings
from django.utils import timezone

from bulkimport import services
from bulkimport.models import BulkChunk, BulkRequest, BulkRow
from devtools.sample import sample_bytes  # noqa: F401 - the tests' import path
from metriport_bulk.lib import storage
from tests.helpers.runtime import assert_no_live_worker

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


def answer_document_queries(request_id) -> None:
    """Runs the bulk request's open Document Queries in this thread, answered by the sandbox at once, and
    lets a request waiting for them go on (what the signal does on commit in a live pipeline)."""
    assert_no_live_worker("answer_document_queries")
    from docqueries.models import DocumentQuery, QueryStatus
    from docqueries.services import document_queries_run

    open_ids = list(
        DocumentQuery.objects.filter(bulk_request_id=request_id, status=QueryStatus.PROCESSING).values_list(
            "id", flat=True
        )
    )
    with override_settings(DOCQUERY_SANDBOX_DELAY_SECONDS=0):
        DocumentQuery.objects.filter(id__in=open_ids).update(next_attempt_at=timezone.now())  # due now
        if open_ids:
            document_queries_run(query_ids=open_ids)
    services.bulk_documents_check(request_ids=[request_id])


def run_inline(request_id) -> None:
    """Runs every remaining step of a bulk request in this thread (no worker): parse, every chunk, finish,
    its Document Queries (answered at once) and the finish that follows them."""
    assert_no_live_worker("run_inline")
    services.bulk_request_parse(request_id=request_id)
    run_parse_segments(request_id)
    for chunk_id in BulkChunk.objects.filter(request_id=request_id).order_by("index").values_list("id", flat=True):
        services.bulk_chunk_apply(chunk_id=chunk_id)
    services.bulk_request_finish(request_id=request_id)
    answer_document_queries(request_id)
    services.bulk_request_finish(request_id=request_id)


def run_parse_segments(request_id) -> None:
    """Parses, in this thread, what is left of a large file's segments (the parse message parses them all,
    unless a test stopped it after its scan or a segment failed): what the other workers' messages do."""
    token = BulkRequest.objects.get(id=request_id).parse_attempts
    services.bulk_segments_parse(request_id=request_id, token=token)


def submit(tenant, body: bytes, dry_run: bool = False) -> BulkRequest:
    """A bulk request of `tenant` with `body` uploaded (the operator path: no HTTP, no worker)."""
    request = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=dry_run)
    services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
    return request


def result_rows(request_id) -> list[dict]:
    """The request's result CSV as dicts, read from storage."""
    request = BulkRequest.objects.get(id=request_id)
    with storage.open_for_read(request.result_key) as stream:
        return list(csv.DictReader(io.StringIO(stream.read().decode("utf-8"), newline="")))


def run_rows(tenant, rows: list[list[str]], header: list[str] = HEADER) -> tuple[BulkRequest, list[BulkRow]]:
    """A completed request of `rows` (every step inline) and its stored rows in file order."""
    request = submit(tenant, csv_bytes(rows, header))
    run_inline(request.id)
    request.refresh_from_db()
    assert request.status == "completed", request.reason
    return request, list(BulkRow.objects.filter(request_id=request.id).order_by("number"))


def run_bulk(tenant, body: bytes, *, dry_run: bool = False) -> BulkRequest:
    """A bulk request of `body` for the tenant's facility with every pipeline step run inline (no worker)."""
    request = services.bulk_request_create(
        customer=tenant.customer, facility_id=str(tenant.facility.id), dry_run=dry_run
    )
    services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
    run_inline(request.id)
    return BulkRequest.objects.get(id=request.id)
