"""The result file: every row's own cells come back exactly as uploaded, whatever characters they hold, in
row order, with the row's outcome. On PostgreSQL the rows are streamed out with COPY TO, whose text format
escapes backslashes, tabs and line breaks: those must not leak into the file."""

from __future__ import annotations

import csv
import io

import pytest

from bulkimport import services
from bulkimport.models import BulkPhase, BulkRequest, BulkStatus
from docqueries.backends.sandbox import sandbox_documents
from docqueries.models import DocumentQuery, QueryStatus
from docqueries.services import bulk_query_counts
from metriport_bulk.lib import storage
from metriport_bulk.lib.csvio import RESULT_COLUMNS
from tests.helpers.bulk import HEADER, answer_document_queries, csv_bytes, person, result_rows, run_inline
from tests.helpers.factories import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

AWKWARD = [
    "back\\slash",
    "\\N",  # COPY's text form of NULL
    "\\t not a tab, \\n not a newline",
    "a\ttab inside",
    "two\nlines",
    "crlf\r\ninside",
    '"quoted" and, comma',
    "Ünïcödé 患者 🙂",
    "   padded   ",
]


def test_result_cells_equal_the_uploaded_cells_whatever_they_hold(broker):
    rows = [person("Ann", zip_code=f"1000{i}", ext=value) for i, value in enumerate(AWKWARD)]
    rows += [[value, "Doe", "not a date", "F", value, "New York", "NY", "10001", "", value] for value in AWKWARD]
    body = csv_bytes(rows)
    request = services.bulk_request_create(customer=make_tenant().customer, facility_id=None, dry_run=False)
    services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
    run_inline(request.id)

    finished = BulkRequest.objects.get(id=request.id)
    assert finished.status == BulkStatus.COMPLETED
    with storage.open_for_read(finished.result_key) as stream:
        result = list(csv.reader(io.StringIO(stream.read().decode("utf-8"), newline="")))
    assert result[0] == [*HEADER, *RESULT_COLUMNS]
    assert RESULT_COLUMNS == (
        "metriportId",
        "status",
        "reason",
        "errorCode",
        "action",
        "matchedPatientId",
        "matchedOn",
        "documentQuery",
        "documents",
        "facilityId",
    )
    assert [line[: len(HEADER)] for line in result[1:]] == rows
    outcomes = [(line[-9], bool(line[-10]), bool(line[-8])) for line in result[1:]]
    # (status, has a patient id, has a reason): the valid half succeeded, the other half failed with a reason.
    assert outcomes == [("successful", True, False)] * len(AWKWARD) + [("failed", False, True)] * len(AWKWARD)


def test_result_reports_each_rows_document_query(broker):
    tenant = make_tenant()
    rows = [
        person("Ann"),
        person("Bob", opt_out="true"),
        person("Cy", dob="not a date"),
        person("Dee", zip_code="10002"),
    ]
    request = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    body = csv_bytes(rows)
    services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
    run_inline(request.id)
    request.refresh_from_db()
    assert request.status == BulkStatus.COMPLETED
    by_name = {row["firstName"]: row for row in result_rows(request.id)}
    for name in ("Ann", "Dee"):
        patient_id = by_name[name]["metriportId"]
        assert by_name[name]["documentQuery"] == "completed"
        assert by_name[name]["documents"] == str(len(sandbox_documents(patient_id)))
    assert (by_name["Bob"]["documentQuery"], by_name["Bob"]["documents"]) == ("opted out", "")
    assert (by_name["Cy"]["documentQuery"], by_name["Cy"]["documents"]) == ("", "")


def test_a_dry_run_reports_no_document_query(broker):
    request = services.bulk_request_create(customer=make_tenant().customer, facility_id=None, dry_run=True)
    body = csv_bytes([person("Ann")])
    services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
    run_inline(request.id)
    request.refresh_from_db()
    assert request.status == BulkStatus.COMPLETED
    assert [(row["documentQuery"], row["documents"]) for row in result_rows(request.id)] == [("", "")]


def test_request_waits_for_its_queries_then_completes(broker):
    request = services.bulk_request_create(customer=make_tenant().customer, facility_id=None, dry_run=False)
    body = csv_bytes([person("Ann"), person("Bob")])
    services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
    services.bulk_request_parse(request_id=request.id)
    for chunk in request.chunks.all():
        services.bulk_chunk_apply(chunk_id=chunk.id)
    assert finish_waits(request.id)  # its message sent, not begun (what a parse in segments stops for)
    services.bulk_request_finish(request_id=request.id)
    waiting = BulkRequest.objects.get(id=request.id)
    assert (waiting.status, waiting.phase, waiting.result_key) == (BulkStatus.PROCESSING, BulkPhase.DOCUMENTS, "")
    assert not finish_waits(request.id)
    assert bulk_query_counts(bulk_request_id=request.id) == {"total": 2, "completed": 0, "failed": 0, "pending": 2}
    # Late or duplicate finish messages while it waits change nothing; neither does the sweeper.
    services.bulk_request_finish(request_id=request.id)
    services.bulk_requests_resume(force=True)
    assert BulkRequest.objects.get(id=request.id).phase == BulkPhase.DOCUMENTS
    answer_document_queries(request.id)
    assert finish_waits(request.id)  # the last query's end sent it again
    services.bulk_request_finish(request_id=request.id)
    done = BulkRequest.objects.get(id=request.id)
    assert (done.status, done.finish_sent_at) == (BulkStatus.COMPLETED, None)
    assert bulk_query_counts(bulk_request_id=request.id) == {"total": 2, "completed": 2, "failed": 0, "pending": 0}


def finish_waits(request_id) -> bool:
    """The request is finishing and its finish's message is marked sent and not begun."""
    request = BulkRequest.objects.get(id=request_id)
    return request.phase == BulkPhase.FINISHING and request.finish_sent_at is not None


def test_queries_open_at_the_deadline_are_reported_timed_out(broker, settings):
    request = services.bulk_request_create(customer=make_tenant().customer, facility_id=None, dry_run=False)
    body = csv_bytes([person("Ann")])
    services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
    services.bulk_request_parse(request_id=request.id)
    for chunk in request.chunks.all():
        services.bulk_chunk_apply(chunk_id=chunk.id)
    services.bulk_request_finish(request_id=request.id)
    assert BulkRequest.objects.get(id=request.id).phase == BulkPhase.DOCUMENTS
    settings.BULK_DOCUMENT_DEADLINE_SECONDS = 0  # the deadline has passed: the sweeper finishes it
    services.bulk_requests_resume()
    services.bulk_request_finish(request_id=request.id)  # the message the sweeper sent
    done = BulkRequest.objects.get(id=request.id)
    assert done.status == BulkStatus.COMPLETED
    assert [row["documentQuery"] for row in result_rows(done.id)] == ["timed out"]
    assert DocumentQuery.objects.get(bulk_request_id=request.id).status == QueryStatus.PROCESSING


def test_a_result_file_uploaded_again_gives_the_same_outcomes(broker):
    """Fix and upload again (SPEC §6): our result columns are ignored and our formula escape comes off, so
    an unchanged result file gives every row the same outcome, and the new result has each column once."""
    tenant = make_tenant()
    rows = [
        person("Ann", ext="=1+1"),
        person("Bob", dob="not a date"),
        [*person("Cy")[:8], "", "-42"],
        person("O'Neil"),
    ]
    header = [*HEADER[:-1], "externalId"]
    first = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    body = csv_bytes(rows, header)
    services.bulk_request_submit_file(request=first, stream=io.BytesIO(body), size=len(body))
    run_inline(first.id)
    first.refresh_from_db()
    with storage.open_for_read(first.result_key) as stream:
        result_bytes = stream.read()
    assert b"'=1+1" in result_bytes and b"'-42" in result_bytes

    again = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    services.bulk_request_submit_file(request=again, stream=io.BytesIO(result_bytes), size=len(result_bytes))
    run_inline(again.id)
    again.refresh_from_db()
    assert again.status == BulkStatus.COMPLETED
    assert again.header == header
    before, after = result_rows(first.id), result_rows(again.id)
    assert list(after[0]) == list(before[0])  # the same columns, each once
    outcome = ("externalId", "firstName", "status", "reason", "documentQuery")
    assert [[row[k] for k in outcome] for row in after] == [[row[k] for k in outcome] for row in before]
    assert [row["metriportId"] for row in after] == [row["metriportId"] for row in before]  # matched
    # The same values again: every valid row matches its patient and would change nothing (issue 22).
    assert {row["action"] for row in after if row["status"] == "successful"} == {"unchanged"}
    assert {row["errorCode"] for row in after if row["status"] == "failed"} == {"invalid_dob"}
    with storage.open_for_read(again.result_key) as stream:
        assert b"'=1+1" in stream.read()  # escaped once, not twice


def test_a_fixed_row_of_a_result_file_succeeds(broker):
    tenant = make_tenant()
    first = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    body = csv_bytes([person("Ann"), person("Bob", dob="not a date")])
    services.bulk_request_submit_file(request=first, stream=io.BytesIO(body), size=len(body))
    run_inline(first.id)
    with storage.open_for_read(BulkRequest.objects.get(id=first.id).result_key) as stream:
        fixed = stream.read().replace(b"not a date", b"1980-01-02")
    again = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    services.bulk_request_submit_file(request=again, stream=io.BytesIO(fixed), size=len(fixed))
    run_inline(again.id)
    assert [row["status"] for row in result_rows(again.id)] == ["successful"] * 2


def test_the_invalid_file_holds_the_failed_rows_in_the_inputs_columns_ready_to_fix(broker, client):
    """GET `invalid` (SPEC §1): only the failed rows, in the input's own header plus `reason`; one cell fixed
    and uploaded as a new request, that row succeeds. No failed row: no file, `invalid` is null."""
    tenant = make_tenant()
    header = [*HEADER[:-1], "externalId"]
    rows = [person("Ann", ext="MRN-1"), person("Bob", dob="1975-13-01", ext="=MRN-2"), person("Cy", zip_code="x")]
    first = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    body = csv_bytes(rows, header)
    services.bulk_request_submit_file(request=first, stream=io.BytesIO(body), size=len(body))
    run_inline(first.id)
    first.refresh_from_db()
    answer = client.get(f"/medical/v1/patient/bulk/{first.id}", HTTP_X_API_KEY=tenant.api_key).json()
    assert answer["invalid"] and answer["result"] and answer["invalid"] != answer["result"]
    with storage.open_for_read(first.invalid_key) as stream:
        invalid = list(csv.reader(io.StringIO(stream.read().decode())))
    assert invalid[0] == [*header, "reason"]
    assert [line[:-1] for line in invalid[1:]] == [rows[1][:-1] + ["'=MRN-2"], rows[2]]  # escaped as the result
    assert all(line[-1] for line in invalid[1:])  # each with its reason

    fixed = "\n".join(",".join(line) for line in invalid).replace("1975-13-01", "1975-12-01").encode()
    again = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    services.bulk_request_submit_file(request=again, stream=io.BytesIO(fixed), size=len(fixed))
    run_inline(again.id)
    outcomes = {row["firstName"]: (row["status"], row["externalId"]) for row in result_rows(again.id)}
    assert outcomes == {"Bob": ("successful", "'=MRN-2"), "Cy": ("failed", "")}
    again.refresh_from_db()
    assert again.header == header  # `reason` was read as ours, not as a column of the customer's

    clean = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    body = csv_bytes([person("Dee")])
    services.bulk_request_submit_file(request=clean, stream=io.BytesIO(body), size=len(body))
    run_inline(clean.id)
    answer = client.get(f"/medical/v1/patient/bulk/{clean.id}", HTTP_X_API_KEY=tenant.api_key).json()
    assert answer["status"] == "completed" and answer["invalid"] is None
