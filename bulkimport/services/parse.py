"""Parse and validate a request's input file (SPEC §3, §4): every row is stored with its normalized values,
its errors and its status, in batches, under a lease (a crashed parser's work is taken over by the sweeper,
and a parser that lost its lease writes nothing more). Then the request moves on: a dry run to finishing,
an import to applying, with one chunk of rows per apply message."""

from __future__ import annotations

import itertools
import logging
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bulkimport.models import (
    BulkChunk,
    BulkPhase,
    BulkRequest,
    BulkRow,
    BulkRowError,
    BulkStatus,
    RowStatus,
)
from bulkimport.services import dispatch
from bulkimport.services.budget import import_budget_refusal
from bulkimport.services.lifecycle import bulk_request_fail
from bulkimport.services.plan import bulk_request_plan, plan_document_queries, plan_dry_run_rest, row_match_key
from bulkimport.states import phase_transition
from bulkimport.validation import CsvFileError, CsvImport, RowResult, row_reason
from cohorts.services import cohorts_for_import
from metriport_bulk.lib import storage
from metriport_bulk.lib.bulkdb import copy_insert
from metriport_bulk.lib.csvio import too_large_message
from metriport_bulk.lib.ids import as_uuid
from patients.header import ColumnPlan
from patients.selectors import facility_activity
from patients.validation import RowError, RowErrorCode, unknown_cohort_message, unknown_facility_message

logger = logging.getLogger(__name__)

PARSE_BATCH_SIZE = 2_000


class ParseLeaseLost(Exception):
    """Another parser took over this request (the sweeper found this one stale); stop quietly."""


def bulk_request_parse(*, request_id: uuid.UUID) -> None:
    """File checks and row validation, results stored per row. Re-runs start over from the input file."""
    request = BulkRequest.objects.filter(id=request_id, status=BulkStatus.PROCESSING, phase=BulkPhase.PARSING).first()
    if request is None:
        return  # parsed already, or finished: a duplicate message is a no-op
    stale = timezone.now() - timedelta(seconds=settings.BULK_STALE_SECONDS)
    # Lease: parse_attempts is the fencing token; only a fresh request or a stale/released lease is taken.
    token = request.parse_attempts + 1
    taken = (
        BulkRequest.objects.filter(id=request.id, phase=BulkPhase.PARSING, parse_attempts=request.parse_attempts)
        .filter(Q(parse_attempts=0) | Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale))
        .update(parse_attempts=token, heartbeat_at=timezone.now())
    )
    if not taken:
        return
    try:
        _parse(request, token)
    except ParseLeaseLost:
        logger.info("bulk request %s: parse lease lost, another worker continues", request.id)
    except Exception:
        # Release the lease so the retry of this message can take it at once.
        BulkRequest.objects.filter(id=request.id, parse_attempts=token).update(heartbeat_at=None)
        raise


def _heartbeat(request_id: uuid.UUID, token: int, **fields: Any) -> None:
    if not BulkRequest.objects.filter(id=request_id, parse_attempts=token, phase=BulkPhase.PARSING).update(
        heartbeat_at=timezone.now(), **fields
    ):
        raise ParseLeaseLost()


def _parse(request: BulkRequest, token: int) -> None:
    with transaction.atomic():
        _heartbeat(request.id, token, total=0, processed=0, successful=0, failed=0)
        _delete_rows(request.id)
    if request.input_size is not None and request.input_size > settings.BULK_MAX_FILE_BYTES:
        bulk_request_fail(
            request_id=request.id, reason=too_large_message(settings.BULK_MAX_FILE_BYTES, size=request.input_size)
        )
        return
    total = invalid = 0
    try:
        with storage.open_for_read(request.input_key) as stream:
            csv_import = CsvImport(stream, max_rows=settings.BULK_MAX_ROWS, max_bytes=settings.BULK_MAX_FILE_BYTES)
            _heartbeat(request.id, token, header=csv_import.header, warnings=list(csv_import.plan.warnings))
            rows = checked_rows(request, csv_import)
            while stored := _store_rows(request, token, itertools.islice(rows, PARSE_BATCH_SIZE), total, invalid):
                total += stored.rows
                invalid += stored.invalid
    except CsvFileError as exc:
        with transaction.atomic():
            # The rows stored before the error go, and so do the counts they made.
            _heartbeat(request.id, token, total=0, processed=0, successful=0, failed=0)
            _delete_rows(request.id)
        bulk_request_fail(request_id=request.id, reason=exc.message)
        return
    if total == 0:
        bulk_request_fail(request_id=request.id, reason="The file has a header but no patient rows.")
        return
    bulk_request_plan(request=request, heartbeat=lambda: _heartbeat(request.id, token))
    with transaction.atomic():
        if request.dry_run:
            plan_dry_run_rest(request_id=request.id)
            _heartbeat(request.id, token, document_queries_planned=plan_document_queries(request))
            _move_on(request.id, token, BulkPhase.FINISHING)
            dispatch.finish_on_commit(request.id)
            return
        planned = plan_document_queries(request)
        refusal = import_budget_refusal(customer_id=request.customer_id, would_start=planned, request_id=request.id)
        if refusal is not None:
            # Before any chunk: no patient is written. The rows keep their plan (the admin shows it).
            _heartbeat(request.id, token, document_queries_planned=planned)
            bulk_request_fail(request_id=request.id, reason=refusal)
            logger.info("bulk request %s refused: over its customer's Document Query budget", request.id)
            return
        _heartbeat(request.id, token, document_queries_planned=planned)
        chunk_ids = chunks_create(request.id, total=total)
        _move_on(request.id, token, BulkPhase.APPLYING)
        dispatch.chunks_on_commit(chunk_ids)


def chunks_create(request_id: uuid.UUID, *, total: int) -> list[int]:
    """The chunks of rows 1..total (BULK_CHUNK_SIZE each), pending, in the caller's transaction (a request's
    earlier chunks go first). Returns their ids in order."""
    BulkChunk.objects.filter(request_id=request_id).delete()
    chunk_size = settings.BULK_CHUNK_SIZE
    now = timezone.now()
    BulkChunk.objects.bulk_create(
        BulkChunk(
            request_id=request_id,
            index=i,
            first_number=start,
            last_number=min(start + chunk_size - 1, total),
            enqueued_at=now,
        )
        for i, start in enumerate(range(1, total + 1, chunk_size))
    )
    return list(BulkChunk.objects.filter(request_id=request_id).order_by("index").values_list("id", flat=True))


def _move_on(request_id: uuid.UUID, token: int, phase: str) -> None:
    """parsing -> `phase`, only while this parser holds the lease."""
    if not phase_transition(request_id, source=BulkPhase.PARSING, target=phase, guard=Q(parse_attempts=token)):
        raise ParseLeaseLost()


# What validation decides about a row (stored by parse, replaced by reprocess), then the full row.
ROW_RESULT_COLUMNS = ("normalized", "status", "reason", "action", "match_key", "error_code")
ROW_COLUMNS = ("request_id", "number", "raw", *ROW_RESULT_COLUMNS)
ERROR_COLUMNS = ("request_id", "row_number", "code", "field", "message")


@dataclass(frozen=True, slots=True)
class _Stored:
    rows: int
    invalid: int

    def __bool__(self) -> bool:
        return self.rows > 0


def _row_checks(request: BulkRequest, plan: ColumnPlan) -> Callable[[RowResult], None] | None:
    """The row rules that need the customer's data, for a file with the columns they read (checked here, so
    a dry run reports them too): a cohort the customer does not have, when its rule is to reject unknown
    cohorts; a facilityId that is not an active facility of the customer's (another customer's included)."""
    cohorts = cohorts_for_import(customer_id=request.customer_id) if plan.cohorts else None
    facilities = facility_activity(customer_id=request.customer_id) if plan.facility_id is not None else None
    if cohorts is None and facilities is None:
        return None

    def check(result: RowResult) -> None:
        normalized = typing.cast(dict[str, Any], result.normalized)
        if cohorts is not None:
            unknown = cohorts.unknown_columns((name, result.raw[position]) for name, position in plan.cohorts)
            result.errors.extend(
                RowError(RowErrorCode.UNKNOWN_COHORT, column, unknown_cohort_message(column)) for column in unknown
            )
        if facilities is not None and normalized.get("facilityId"):
            facility_id = as_uuid(normalized["facilityId"])
            active = facilities.get(str(facility_id)) if facility_id else None
            if active is None or not active:
                message = unknown_facility_message(inactive=active is False)
                result.errors.append(RowError(RowErrorCode.UNKNOWN_FACILITY, "facilityId", message))
            else:
                normalized["facilityId"] = str(facility_id)
        if result.errors:
            result.normalized = None

    return check


def checked_rows(request: BulkRequest, csv_import: CsvImport) -> Iterator[RowResult]:
    """The file's rows validated (lazily, in row order), the customer's row rules included (_row_checks).
    The rules read the customer's data here, at once: the rows are consumed inside a COPY, where the
    connection can run no other statement."""
    return _checked(csv_import.rows(), _row_checks(request, csv_import.plan))


def _checked(rows: Iterator[RowResult], check: Callable[[RowResult], None] | None) -> Iterator[RowResult]:
    for result in rows:
        if check is not None and result.valid:
            check(result)
        yield result


def _store_rows(
    request: BulkRequest, token: int, batch: Iterable[RowResult], total_before: int, invalid_before: int
) -> _Stored:
    """Stores the next batch of rows (and their errors) in one transaction; an empty batch stores nothing.

    `batch` is consumed inside the COPY of the rows: each row is validated while PostgreSQL, on the other
    core, is still taking in the ones before it, instead of the two taking turns."""
    errors: list[tuple[Any, ...]] = []
    count = invalid = 0

    def values() -> Iterator[tuple[Any, ...]]:
        nonlocal count, invalid
        for result in batch:
            count += 1
            if not result.valid:
                invalid += 1
                errors.extend(error_values(request.id, result))
            yield (request.id, result.number, result.raw, *row_result_values(result))

    with transaction.atomic():
        _heartbeat(request.id, token)  # first: a parser that lost its lease writes nothing
        copy_insert(BulkRow, ROW_COLUMNS, values())
        if not count:
            return _Stored(0, 0)
        copy_insert(BulkRowError, ERROR_COLUMNS, errors)
        # Counts so far are the progress figure while parsing: invalid rows are final already.
        failed = invalid_before + invalid
        _heartbeat(request.id, token, total=total_before + count, processed=failed, failed=failed)
    return _Stored(count, invalid)


def row_error_code(result: RowResult) -> str:
    """The result file's `errorCode`: the row's error codes, each once, "; "-separated."""
    return "; ".join(dict.fromkeys(str(error.code) for error in result.errors))[:200]


def row_result_values(result: RowResult) -> tuple[Any, ...]:
    """The ROW_RESULT_COLUMNS of a validated row: pending (to plan and apply) when valid, else failed with its
    reason."""
    return (
        result.normalized,
        RowStatus.PENDING if result.valid else RowStatus.FAILED,
        row_reason(result.errors),
        "",
        row_match_key(result.normalized) if result.valid and result.normalized else "",
        row_error_code(result),
    )


def error_values(request_id: uuid.UUID, result: RowResult) -> Iterator[tuple[Any, ...]]:
    """The BulkRowError values (ERROR_COLUMNS) of a row's errors, cut to the columns' lengths."""
    return ((request_id, result.number, str(e.code), e.field[:60], e.message[:300]) for e in result.errors)


def _delete_rows(request_id: uuid.UUID) -> None:
    BulkRowError.objects.filter(request_id=request_id).delete()
    BulkChunk.objects.filter(request_id=request_id).delete()
    # Raw DELETE: Django's cascade collector would load 100k rows into memory first.
    BulkRow.objects.filter(request_id=request_id)._raw_delete(BulkRow.objects.db)
