"""What a customer can do with a bulk request after creating it (SPEC §1, our additions to Metriport's API):
confirm a completed dry run as a real import of the same stored file, and cancel a request that has not
ended; and what support can: send a request's webhook again.

Both race the pipeline, and both are decided by one conditional UPDATE of the request (states.transition):
- confirm: the unique `confirms` link lets one confirmation of a dry run win; a second answers 409.
- cancel against a chunk: a chunk's transaction locks the request row last and rolls back when the request
  is no longer processing (services.apply.bulk_chunk_apply), so a chunk either committed before the cancel (its
  rows are applied and reported) or applies nothing.
- cancel against finish: both move the request out of `processing` conditionally; exactly one wins.
"""

from __future__ import annotations

import logging
import uuid

from django.db import IntegrityError, transaction

from bulkimport.models import BulkRequest, BulkRow, BulkRowError, BulkStatus, OnDrift, RowAction, RowStatus
from bulkimport.services.budget import import_budget_refusal
from bulkimport.services.finish import final_counts, write_result
from bulkimport.services.lifecycle import bulk_request_fail, cancelled_result_key, notify
from bulkimport.services.plan import plan_document_queries
from bulkimport.services.upload import bulk_upload_claim
from patients.models import Customer

logger = logging.getLogger(__name__)

CANCELLED_REASON = "Cancelled by the customer"
CANCELLED_ROW_CODE = "cancelled"
CANCELLED_ROW_MESSAGE = "Cancelled"


class OperationRefused(Exception):
    """The request is not in a state that allows the operation (HTTP 409)."""


def bulk_request_confirm(*, customer: Customer, request: BulkRequest, on_drift: str = OnDrift.FAIL) -> BulkRequest:
    """A completed dry run becomes a new, real request importing the very same stored input file.

    The new request starts `processing` at once (no upload URL); it is a request like any other from there
    on (webhooks, result file, reprocess). It applies the plan the dry run showed: a row whose decision
    changed since (another import or API call created or changed a match) is `drifted`, and `on_drift`
    says whether it is applied with its new decision (OnDrift.APPLY) or failed (OnDrift.FAIL).

    Refused (OperationRefused, nothing created) when the Document Queries it would start are over the
    customer's budget (services.budget); its import is checked again when planned."""
    if not request.dry_run or request.status != BulkStatus.COMPLETED:
        what = "a dry run" if request.dry_run else "not a dry run"
        raise OperationRefused(
            f"Only a completed dry run can be confirmed; this request is {what} and {request.status}."
        )
    if not request.facility.active:
        raise OperationRefused(f"Facility {request.facility_id} is inactive.")
    existing = BulkRequest.objects.filter(confirms=request).values_list("id", flat=True).first()
    if existing is not None:
        raise OperationRefused(f"This dry run was already confirmed as request {existing}.")
    with transaction.atomic():
        # The dry run's rows counted again as the patients now are (opt-outs and queries since the preview).
        refusal = import_budget_refusal(customer_id=customer.id, would_start=plan_document_queries(request))
    if refusal is not None:
        raise OperationRefused(refusal)  # nothing created: the dry run stays confirmable
    try:
        with transaction.atomic():
            confirmed = BulkRequest.objects.create(
                customer=customer,
                facility_id=request.facility_id,
                dry_run=False,
                confirms=request,
                on_drift=on_drift,
                upload_key="",
            )
            claimed = bulk_upload_claim(
                request_id=confirmed.id, input_key=request.input_key, input_size=request.input_size
            )
    except IntegrityError:
        # A concurrent confirmation of the same dry run won.
        existing = BulkRequest.objects.filter(confirms=request).values_list("id", flat=True).first()
        raise OperationRefused(f"This dry run was already confirmed as request {existing}.") from None
    assert claimed, "a request created in this transaction is waiting"
    logger.info("bulk request %s confirmed dry run %s", confirmed.id, request.id)
    confirmed.refresh_from_db()
    return confirmed


def bulk_request_cancel(*, request: BulkRequest) -> BulkRequest:
    """waiting/processing -> failed with `Cancelled by the customer`.

    Rows already applied stay applied and are reported in the result file; rows not applied yet become
    failed `Cancelled`; the failed webhook goes out. A request that ended already is refused.

    Two transactions, in the lock order of a chunk (request row last there, first here would deadlock):
    the status change and its webhook commit first, so a chunk in flight sees the request failed when it
    locks it and rolls back; then the rows are settled once no chunk holds them. A crash between the two
    leaves pending rows in a cancelled request: the sweeper settles them (bulk_cancellations_settle)."""
    source = request.status
    if source not in (BulkStatus.WAITING, BulkStatus.PROCESSING) or not bulk_request_fail(
        request_id=request.id, reason=CANCELLED_REASON, source=source
    ):
        request.refresh_from_db()
        raise OperationRefused(f"The request is {request.status}: only a waiting or processing one can be cancelled.")
    if source == BulkStatus.PROCESSING:
        _settle_cancelled(request)
    logger.info("bulk request %s cancelled by the customer (was %s)", request.id, source)
    request.refresh_from_db()
    return request


def _settle_cancelled(request: BulkRequest) -> None:
    """Rows not applied become failed `Cancelled`; the result file reports every row; counts follow it."""
    with transaction.atomic():
        pending = BulkRow.objects.filter(request_id=request.id, status=RowStatus.PENDING)
        numbers = list(pending.select_for_update().values_list("number", flat=True))
        BulkRowError.objects.bulk_create(
            [
                BulkRowError(
                    request_id=request.id,
                    row_number=n,
                    code=CANCELLED_ROW_CODE,
                    field="",
                    message=CANCELLED_ROW_MESSAGE,
                )
                for n in numbers
            ],
            batch_size=2000,
        )
        pending.update(
            status=RowStatus.FAILED, reason=CANCELLED_ROW_MESSAGE, action=RowAction.NONE, error_code=CANCELLED_ROW_CODE
        )
        result_key = cancelled_result_key(request)
        invalid_key = write_result(request, result_key)
        BulkRequest.objects.filter(id=request.id).update(
            result_key=result_key, invalid_key=invalid_key, **final_counts(request.id)
        )


def bulk_cancellations_settle() -> int:
    """Sweeper job: cancelled requests whose rows were never settled (the cancelling process died)."""
    settled = 0
    # The cancelled requests with rows (parse stores rows and `total` in one transaction) and no result yet:
    # a handful at most; then one index probe each for a pending row. Not one join over the rows: PostgreSQL
    # planned that as a parallel scan of every request's pending rows, run at each scheduler tick, whose cost
    # grew with the rows being imported meanwhile.
    cancelled = BulkRequest.objects.filter(
        status=BulkStatus.FAILED, reason=CANCELLED_REASON, result_key="", total__gt=0
    )
    for request in cancelled.order_by("created_at")[:100]:
        if BulkRow.objects.filter(request_id=request.id, status=RowStatus.PENDING).exists():
            _settle_cancelled(request)
            settled += 1
    return settled


def bulk_request_resend_webhook(*, request_id: uuid.UUID) -> bool:
    """Support action: a new webhook message with the request's current status (and a fresh result URL)."""
    request = BulkRequest.objects.filter(id=request_id).first()
    if request is None or request.status not in (BulkStatus.PROCESSING, BulkStatus.COMPLETED, BulkStatus.FAILED):
        return False
    with transaction.atomic():
        notify(request)
    return True
