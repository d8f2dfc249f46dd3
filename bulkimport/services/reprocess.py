"""Reprocess a request (SPEC §10): what support and operators use after a fix (a normalizer bug, a stuck
worker). A processing request is resumed now; a completed one has its rows validated again from the stored
input file, the rows now valid applied, its result file rewritten and a new `completed` webhook sent."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bulkimport.models import BulkRequest, BulkRow, BulkRowError, BulkStatus, RowStatus
from bulkimport.services import dispatch
from bulkimport.services.apply import apply_rows, pending_rows
from bulkimport.services.finish import final_counts, write_plan, write_result
from bulkimport.services.lifecycle import notify
from bulkimport.services.parse import ERROR_COLUMNS, PARSE_BATCH_SIZE, error_values, row_error_code
from bulkimport.services.plan import bulk_request_plan, plan_dry_run_rest, row_match_key
from bulkimport.services.sweep import bulk_requests_resume
from bulkimport.validation import CsvImport, RowResult, row_reason
from metriport_bulk.lib import storage
from metriport_bulk.lib.bulkdb import copy_insert, update_by_id


class ReprocessRefused(Exception):
    pass


def bulk_request_reprocess(*, request_id: uuid.UUID, failed_only: bool = False) -> str:
    """- processing: resumes it now (the sweeper would, after BULK_STALE_SECONDS).
    - completed: re-validates rows from the stored input file (only the failed ones with failed_only),
      applies the rows that are now valid, rewrites the result CSV and sends a new `completed` webhook.
      The status stays `completed`: the state machine has no way back.
    Returns a one-line description of what was done; raises ReprocessRefused otherwise."""
    request = _reprocessable(request_id)
    if request.status == BulkStatus.PROCESSING:
        resumed = bulk_requests_resume(force=True, request_id=request.id)
        return f"resumed ({resumed} step(s) re-sent, phase {request.phase or 'none'})"
    targets = BulkRow.objects.filter(request_id=request.id)
    if failed_only:
        targets = targets.filter(status=RowStatus.FAILED)
    numbers = set(targets.values_list("number", flat=True))
    if not numbers:
        return "nothing to reprocess (no failed rows)"
    revalidated = _revalidate_rows(request, numbers)
    applied = 0
    if not request.dry_run:
        batch = settings.BULK_CHUNK_SIZE
        while True:
            with transaction.atomic():
                rows = pending_rows(request.id, limit=batch)
                if not rows:
                    break
                applied += apply_rows(request, rows)
    else:
        bulk_request_plan(request=request)
        plan_dry_run_rest(request_id=request.id)
    invalid_key = write_result(request, request.result_key)
    plan, absent_key = write_plan(request)
    with transaction.atomic():
        BulkRequest.objects.filter(id=request.id).update(
            invalid_key=invalid_key,
            plan=plan,
            absent_key=absent_key,
            heartbeat_at=timezone.now(),
            **final_counts(request.id),
        )
        notify(BulkRequest.objects.get(id=request.id))
    return f"re-validated {revalidated} row(s), applied {applied}"


def bulk_request_reprocess_later(*, request_id: uuid.UUID, failed_only: bool = False) -> None:
    """The same, queued for a worker (the admin: a large request must not run inside a web request).
    Raises ReprocessRefused at once for a request that cannot be reprocessed."""
    request = _reprocessable(request_id)
    with transaction.atomic():
        dispatch.reprocess_on_commit(request.id, failed_only=failed_only)


def _reprocessable(request_id: uuid.UUID) -> BulkRequest:
    request = BulkRequest.objects.filter(id=request_id).first()
    if request is None:
        raise ReprocessRefused(f"No bulk request {request_id}.")
    if request.status not in (BulkStatus.PROCESSING, BulkStatus.COMPLETED):
        raise ReprocessRefused(
            f"A {request.status} request cannot be reprocessed: only processing (resume) or completed requests can."
        )
    return request


def _revalidate_rows(request: BulkRequest, numbers: set[int]) -> int:
    """Re-runs validation of the rows `numbers` from the stored input file; they become pending or failed."""
    done = 0
    with storage.open_for_read(request.input_key) as stream:
        batch: list[RowResult] = []
        for result in CsvImport(stream, max_rows=settings.BULK_MAX_ROWS, max_bytes=settings.BULK_MAX_FILE_BYTES).rows():
            if result.number in numbers:
                batch.append(result)
            if len(batch) >= PARSE_BATCH_SIZE:
                done += _replace_rows(request, batch)
                batch = []
        if batch:
            done += _replace_rows(request, batch)
    return done


def _replace_rows(request: BulkRequest, batch: list[RowResult]) -> int:
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
            (
                "normalized",
                "status",
                "reason",
                "action",
                "patient_id",
                "match_key",
                "error_code",
                "matched_patient_id",
                "matched_on",
                "duplicate_of",
                "drift",
            ),
            [
                (
                    ids[r.number],
                    r.normalized,
                    RowStatus.PENDING if r.valid else RowStatus.FAILED,
                    row_reason(r.errors),
                    "",
                    None,
                    row_match_key(r.normalized) if r.valid and r.normalized else "",
                    row_error_code(r),
                    None,
                    "",
                    None,
                    None,
                )
                for r in batch
            ],
        )
    return len(batch)
