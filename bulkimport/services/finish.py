"""Finish a request (SPEC §5, §7): wait until its patients' medical data is there (every Document Query
ended, or the request's deadline passed), then write the result file, and the file of the failed rows,
complete it and send the `completed` webhook."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterable, Mapping
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from bulkimport.models import BulkPhase, BulkRequest, BulkRow, BulkStatus, RowStatus
from bulkimport.services import dispatch
from bulkimport.services.lifecycle import absent_key, invalid_key_of, notify, result_key
from bulkimport.services.plan import ABSENT_COLUMNS, absent_rows, plan_counts, plan_facility_counts
from bulkimport.states import phase_transition, transition
from bulkimport.store import store
from docqueries.services import bulk_queries_open
from metriport_bulk.lib import storage
from metriport_bulk.lib.csvio import ResultCsvWriter
from patients.header import build_column_plan


def bulk_request_finish(*, request_id: uuid.UUID) -> None:
    """Writes the result CSV and completes the request (once: the transition is conditional)."""
    request = BulkRequest.objects.filter(id=request_id, status=BulkStatus.PROCESSING, phase=BulkPhase.FINISHING).first()
    if request is None:
        return
    if not _documents_ready(request):
        # The medical data is not there yet: wait for it. The end of the last query (or the sweeper, at the
        # latest at the deadline) moves the request back to finishing.
        phase_transition(request.id, source=BulkPhase.FINISHING, target=BulkPhase.DOCUMENTS)
        # A query that ended between the check and the phase change found no request waiting: look again.
        bulk_documents_check(request_ids=[request.id])
        return
    # Begun: no longer a finish that waits for a worker (services.parse._another_request_waits).
    BulkRequest.objects.filter(id=request.id).update(heartbeat_at=timezone.now(), finish_sent_at=None)
    key = result_key(request)
    invalid_key = write_result(request, key)
    counts = final_counts(request.id)
    plan, absent = write_plan(request)
    with transaction.atomic():
        if transition(
            request.id,
            source=BulkStatus.PROCESSING,
            target=BulkStatus.COMPLETED,
            phase=BulkPhase.DONE,
            result_key=key,
            invalid_key=invalid_key,
            plan=plan,
            absent_key=absent,
            **counts,
        ):
            request.refresh_from_db()
            notify(request)


def write_plan(request: BulkRequest) -> tuple[dict[str, object], str]:
    """The request's plan summary (GET `plan`) and the file of the facility's patients no row matched;
    returns the summary and that file's key."""
    key = absent_key(request)
    absent = 0
    with tempfile.TemporaryFile() as out:
        writer = ResultCsvWriter(out, list(ABSENT_COLUMNS), columns=())
        for cells in absent_rows(request):
            writer.write_cells(cells, ())
            absent += 1
        out.seek(0)
        storage.save(key, out)
    summary: dict[str, object] = {
        "actions": plan_counts(request),
        "absentFromFile": absent,
        "documentQueries": request.document_queries_planned or 0,
        "facilities": plan_facility_counts(request),
    }
    return summary, key


def _documents_deadline_passed(request: BulkRequest) -> bool:
    started = request.started_at or request.created_at
    return timezone.now() - started > timedelta(seconds=settings.BULK_DOCUMENT_DEADLINE_SECONDS)


def _documents_ready(request: BulkRequest, *, ended: uuid.UUID | None = None) -> bool:
    """True when every Document Query of the request has ended, or its deadline has passed. `ended`: a query
    of the request that just ended (docqueries' bulk_queries_open looks after it first)."""
    return (
        request.dry_run
        or _documents_deadline_passed(request)
        or not bulk_queries_open(bulk_request_id=request.id, after=ended)
    )


def bulk_documents_check(
    *, request_ids: Iterable[uuid.UUID], latest: Mapping[uuid.UUID, uuid.UUID] | None = None
) -> int:
    """Requests waiting for medical data whose queries have all ended (or whose deadline passed) go on to
    finish. Called when queries end (by signal, with `latest`: each request's query that ended last) and by
    the sweeper; the phase change is conditional, so exactly one caller sends the finish. Returns how many
    went on."""
    moved = 0
    for request in BulkRequest.objects.filter(
        id__in=list(request_ids), status=BulkStatus.PROCESSING, phase=BulkPhase.DOCUMENTS
    ):
        if _documents_ready(request, ended=(latest or {}).get(request.id)) and phase_transition(
            request.id, source=BulkPhase.DOCUMENTS, target=BulkPhase.FINISHING
        ):
            dispatch.finish_now(request.id)
            moved += 1
    return moved


def on_document_queries_ended(
    sender: object,
    *,
    bulk_request_ids: Iterable[uuid.UUID],
    latest: Mapping[uuid.UUID, uuid.UUID] | None = None,
    **kwargs: object,
) -> None:
    bulk_documents_check(request_ids=bulk_request_ids, latest=latest)


def final_counts(request_id: uuid.UUID) -> dict[str, int]:
    """The request's count fields as its rows now are (counted in the database): every row is processed,
    succeeded or failed."""
    counts = dict(
        BulkRow.objects.filter(request_id=request_id).values_list("status").annotate(n=Count("id")).order_by()
    )
    succeeded, failed = counts.get(RowStatus.SUCCEEDED, 0), counts.get(RowStatus.FAILED, 0)
    return {"total": succeeded + failed, "processed": succeeded + failed, "successful": succeeded, "failed": failed}


def write_result(request: BulkRequest, result_key: str) -> str:
    """Writes the result file and, when rows failed, the file of the failed rows only, in the input's own
    columns plus `reason`, ready to be fixed and uploaded again. Returns the latter's key, or ""."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as invalid_out:
        writer = ResultCsvWriter(out, request.header)
        invalid_writer = ResultCsvWriter(invalid_out, request.header, columns=("reason",))
        default_facility = str(request.facility_id)
        facility_cell = build_column_plan(request.header).facility_id if request.header else None
        failed = 0
        # The raw cells come as JSON text, decoded here with orjson: Django's JSONField decoding costs more.
        for (
            raw,
            patient_id,
            status,
            reason,
            action,
            opted_out,
            query_status,
            documents,
            error_code,
            matched,
            matched_on,
            row_facility,
        ) in store().result_rows(request.id):
            cells = orjson.loads(raw)
            writer.write(
                cells,
                metriport_id=str(patient_id) if patient_id else None,
                status=status,
                reason=reason,
                action=action,
                error_code=error_code,
                matched_patient_id=str(matched) if matched else "",
                matched_on=matched_on,
                document_query=_document_query_word(status, request.dry_run, opted_out, query_status),
                documents="" if query_status != "completed" or documents is None else str(documents),
                facility_id=_row_facility(status, row_facility, cells, facility_cell, default_facility),
            )
            if status == RowStatus.FAILED:
                invalid_writer.write_cells(cells, (reason,))
                failed += 1
        out.seek(0)
        storage.save(result_key, out)
        if not failed:
            return ""
        invalid_key = invalid_key_of(result_key)
        invalid_out.seek(0)
        storage.save(invalid_key, invalid_out)
        return invalid_key


def _row_facility(
    status: str, routed: str | None, cells: list[str], facility_cell: int | None, default_facility: str
) -> str:
    """The result's `facilityId`: the facility a valid row goes to (its facilityId cell's, else the request's).
    A failed row goes nowhere: the request's facility when it names none, empty when it names one (its cell,
    unchecked or refused, is among the row's own columns)."""
    if status != RowStatus.FAILED:
        return routed or default_facility
    named = facility_cell is not None and facility_cell < len(cells) and cells[facility_cell].strip()
    return "" if named else default_facility


def _document_query_word(status: str, dry_run: bool, opted_out: object, query_status: str | None) -> str:
    """The result file's `documentQuery` cell (SPEC §7): how the row's patient's query ended."""
    if status != RowStatus.SUCCEEDED or dry_run:
        return ""
    if query_status is None:
        # Not opted out and no query of this import: the patient's last query was recent (the budget's rule).
        return "opted out" if opted_out in (True, "t") else "recently queried"
    # Still processing when the result is written: the request's deadline passed without an answer.
    return {"completed": "completed", "failed": "failed"}.get(query_status, "timed out")
