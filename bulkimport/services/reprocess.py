"""Reprocess a request (SPEC §10): what support and operators use after a fix (a normalizer bug, a stuck
worker). A processing request is resumed now. A completed one has its rows validated and planned again by
parse's own steps (from the stored input file) and then goes through the pipeline once more: back to
processing, its rows applied chunk by chunk (`bulk_chunk_apply`), its new Document Queries waited for and
its result written by `bulk_request_finish`, which completes it again and sends a new `completed` webhook.
There is one way a row gets applied. The Document Queries an import's reprocess would start are checked
against the customer's budget as an import's are (services.budget), in the transaction that re-validates,
plans and reopens it: a refused reprocess changes nothing."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count

from bulkimport.models import BulkPhase, BulkRequest, BulkRow, BulkRowError, BulkStatus, RowStatus
from bulkimport.services import dispatch
from bulkimport.services.apply import bulk_chunk_apply
from bulkimport.services.budget import reprocess_budget_refusal
from bulkimport.services.finish import bulk_request_finish
from bulkimport.services.parse import (
    ERROR_COLUMNS,
    PARSE_BATCH_SIZE,
    ROW_RESULT_COLUMNS,
    checked_rows,
    chunks_create,
    error_values,
    row_result_values,
)
from bulkimport.services.plan import bulk_request_plan, plan_document_queries, plan_dry_run_rest
from bulkimport.services.sweep import bulk_requests_resume
from bulkimport.states import transition
from bulkimport.validation import CsvImport, RowResult
from docqueries.services import bulk_queries_started
from metriport_bulk.lib import storage
from metriport_bulk.lib.bulkdb import copy_insert, update_by_id

# What an earlier run left on a row besides validation's outcome, cleared when it is validated again.
_APPLIED_COLUMNS = ("patient_id", "matched_patient_id", "matched_on", "duplicate_of", "drift")

logger = logging.getLogger(__name__)


class ReprocessRefused(Exception):
    pass


def bulk_request_reprocess(*, request_id: uuid.UUID, failed_only: bool = False) -> str:
    """- processing: resumes it now (the sweeper would, after BULK_STALE_SECONDS).
    - completed: re-validates rows from the stored input file (only the failed ones with failed_only) and
      plans them, then runs the pipeline from its apply step: the rows now valid are applied here, chunk by
      chunk, and the finish step completes the request once the Document Queries it started have ended (at
      once when it started none; else the request waits for them in phase `documents`, as an import does).
      An import's reprocess is checked against the customer's Document Query budget with the queries it would
      start (services.budget), as an import is; a dry run's starts none.
    Returns a one-line description of what was done; raises ReprocessRefused otherwise (over the budget
    included), having changed nothing."""
    request = _reprocessable(request_id)
    if request.status == BulkStatus.PROCESSING:
        resumed = bulk_requests_resume(force=True, request_id=request.id)
        return f"resumed ({resumed} step(s) re-sent, phase {request.phase or 'none'})"
    # One transaction from the rows' re-validation to the request's reopening: the budget check needs the
    # plan's count, and a refusal (or a reprocess that lost the race for the request) rolls back every row it
    # rewrote, so the request, its rows, counts and result stay exactly as they were.
    with transaction.atomic():
        request = _completed_locked(request_id)
        targets = BulkRow.objects.filter(request_id=request.id)
        if failed_only:
            targets = targets.filter(status=RowStatus.FAILED)
        numbers = set(targets.values_list("number", flat=True))
        if not numbers:
            return "nothing to reprocess (no failed rows)"
        revalidated = _revalidate_rows(request, numbers)
        bulk_request_plan(request=request)
        chunk_ids = _reopen(request)
    pending = BulkRow.objects.filter(request_id=request.id, status=RowStatus.PENDING).count()
    for chunk_id in chunk_ids:
        bulk_chunk_apply(chunk_id=chunk_id)
    bulk_request_finish(request_id=request.id)
    return f"re-validated {revalidated} row(s), applied {pending}"


def bulk_request_reprocess_later(
    *, request_id: uuid.UUID, failed_only: bool = False, requested_by: int | None = None
) -> None:
    """The same, queued for a worker (the admin: a large request must not run inside a web request).
    Raises ReprocessRefused at once for a request that cannot be reprocessed; the worker's outcome, a refusal
    included, goes to the request's admin history under `requested_by` (a staff user's id)."""
    request = _reprocessable(request_id)
    with transaction.atomic():
        dispatch.reprocess_on_commit(request.id, failed_only=failed_only, requested_by=requested_by)


def bulk_request_reprocess_queued(*, request_id: uuid.UUID, failed_only: bool, requested_by: int | None = None) -> None:
    """The worker's side of bulk_request_reprocess_later. A refusal (over the customer's Document Query budget,
    or the request changed meanwhile) is no error to retry: it is logged (ids and counts only, as its message)
    and written to the request's admin history, as an outcome is, where the staff member who queued it (and
    everyone who opens the request's page) reads it."""
    try:
        outcome = bulk_request_reprocess(request_id=request_id, failed_only=failed_only)
    except ReprocessRefused as exc:
        logger.warning("bulk request %s: queued reprocess refused: %s", request_id, exc)
        _admin_history(request_id, requested_by, f"Queued reprocess refused: {exc}")
        return
    _admin_history(request_id, requested_by, f"Queued reprocess ran: {outcome}.")


def _admin_history(request_id: uuid.UUID, user_id: int | None, message: str) -> None:
    """A line in the request's admin history (its page's History, django.contrib.admin's LogEntry), under the
    staff user who asked; none when no user asked or the user is gone."""
    request = BulkRequest.objects.filter(id=request_id).first()
    if user_id is None or request is None or not get_user_model().objects.filter(pk=user_id).exists():
        return
    LogEntry.objects.log_actions(
        user_id=user_id, queryset=[request], action_flag=CHANGE, change_message=message, single_object=True
    )


def _reprocessable(request_id: uuid.UUID) -> BulkRequest:
    request = BulkRequest.objects.filter(id=request_id).first()
    if request is None:
        raise ReprocessRefused(f"No bulk request {request_id}.")
    if request.status not in (BulkStatus.PROCESSING, BulkStatus.COMPLETED):
        raise ReprocessRefused(
            f"A {request.status} request cannot be reprocessed: only processing (resume) or completed requests can."
        )
    return request


def _completed_locked(request_id: uuid.UUID) -> BulkRequest:
    """The request, locked for the caller's transaction while it is still completed: a second reprocess of it
    waits here, then finds it processing (FOR NO KEY UPDATE: a confirm's link to a dry run is not held up)."""
    request = BulkRequest.objects.select_for_update(no_key=True).filter(id=request_id).first()
    if request is None or request.status != BulkStatus.COMPLETED:
        raise ReprocessRefused(f"Bulk request {request_id} is no longer completed: reprocessed meanwhile?")
    return request


def _reopen(request: BulkRequest) -> list[int]:
    """completed -> processing, where parse leaves a request: an import in phase `applying` with a pending
    chunk per BULK_CHUNK_SIZE rows (returned, to apply), a dry run in phase `finishing`. The counts start as
    the rows now are; applying adds to them as it does for an import. In the caller's transaction, which
    planned the rows: an import's is checked against the Document Query budget first (ReprocessRefused)."""
    if request.dry_run:
        plan_dry_run_rest(request_id=request.id)
        planned = plan_document_queries(request)  # what its confirm would start
    else:
        would_start = plan_document_queries(request, rerun=True)
        refusal = reprocess_budget_refusal(
            customer_id=request.customer_id, would_start=would_start, request_id=request.id
        )
        if refusal is not None:
            logger.info(
                "bulk request %s: reprocess refused, over its customer's Document Query budget (%d queries)",
                request.id,
                would_start,
            )
            raise ReprocessRefused(refusal)
        # The request's queries once applied: the ones its earlier runs started and these (the daily budget
        # holds the difference as reserved while it applies: services.budget.queries_reserved).
        started = bulk_queries_started(bulk_request_ids=[request.id]).get(request.id, 0)
        planned = started + would_start
    counts = dict(
        BulkRow.objects.filter(request_id=request.id).values_list("status").annotate(n=Count("id")).order_by()
    )
    succeeded, failed = counts.get(RowStatus.SUCCEEDED, 0), counts.get(RowStatus.FAILED, 0)
    total = succeeded + failed + counts.get(RowStatus.PENDING, 0)
    chunk_ids = [] if request.dry_run else chunks_create(request.id, total=total)
    if not transition(
        request.id,
        source=BulkStatus.COMPLETED,
        target=BulkStatus.PROCESSING,
        phase=BulkPhase.FINISHING if request.dry_run else BulkPhase.APPLYING,
        total=total,
        processed=succeeded + failed,
        successful=succeeded,
        failed=failed,
        document_queries_planned=planned,
    ):
        raise ReprocessRefused(f"Bulk request {request.id} is no longer completed: reprocessed meanwhile?")
    return chunk_ids


def _revalidate_rows(request: BulkRequest, numbers: set[int]) -> int:
    """Validates the rows `numbers` again from the stored input file, as parse does (checked_rows); they
    become pending or failed."""
    done = 0
    with storage.open_for_read(request.input_key) as stream:
        csv_import = CsvImport(stream, max_rows=settings.BULK_MAX_ROWS, max_bytes=settings.BULK_MAX_FILE_BYTES)
        batch: list[RowResult] = []
        for result in checked_rows(request, csv_import):
            if result.number in numbers:
                batch.append(result)
            if len(batch) >= PARSE_BATCH_SIZE:
                done += _replace_rows(request, batch)
                batch = []
        if batch:
            done += _replace_rows(request, batch)
    return done


def _replace_rows(request: BulkRequest, batch: list[RowResult]) -> int:
    """Stores the rows of `batch` as parse would have (row_result_values), replacing what they held."""
    by_number = {result.number: result for result in batch}
    with transaction.atomic():
        BulkRowError.objects.filter(request_id=request.id, row_number__in=by_number).delete()
        copy_insert(
            BulkRowError,
            ERROR_COLUMNS,
            [values for result in batch for values in error_values(request.id, result)],
        )
        ids = dict(BulkRow.objects.filter(request_id=request.id, number__in=by_number).values_list("number", "id"))
        update_by_id(
            BulkRow,
            (*ROW_RESULT_COLUMNS, *_APPLIED_COLUMNS),
            [(ids[r.number], *row_result_values(r), None, None, "", None, None) for r in batch],
        )
    return len(batch)
