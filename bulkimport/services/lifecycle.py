"""What every step of a bulk request shares: where its files live, the URLs a customer gets for them, its
webhook, and failing it."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction

from bulkimport.models import BulkPhase, BulkRequest, BulkStatus
from bulkimport.states import transition
from metriport_bulk.lib import storage
from webhooks.services import webhook_message_create
from webhooks.types import BULK_PATIENT_CREATE, Lane


class BulkRequestError(Exception):
    """A customer-facing refusal (bad facility, bad parameter); `status` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _base_key(request: BulkRequest) -> str:
    return f"bulk/{request.customer_id}/{request.id}"


def upload_key(request: BulkRequest) -> str:
    """Where a customer's S3 upload lands (rewritable until noticed)."""
    return f"{_base_key(request)}/upload.csv"


def input_key(request: BulkRequest) -> str:
    """The immutable copy of the upload that every step reads."""
    return f"{_base_key(request)}/input.csv"


def result_key(request: BulkRequest) -> str:
    return f"{_base_key(request)}/result.csv"


def absent_key(request: BulkRequest) -> str:
    """The facility's patients no row of the request matched (GET `…/absent`)."""
    return f"{_base_key(request)}/absent.csv"


def cancelled_result_key(request: BulkRequest) -> str:
    """A key of its own: a finish that lost the race to the cancel may still be writing result.csv."""
    return f"{_base_key(request)}/result-cancelled.csv"


def invalid_key_of(result_key: str) -> str:
    """Where the file of a result's failed rows goes (SPEC §1 `invalid`): beside the result file."""
    return result_key.removesuffix(".csv") + "-invalid.csv"


def bulk_result_url(request: BulkRequest) -> str | None:
    """A fresh download URL of the result file: a completed request's, or the partial one of a request the
    customer cancelled (services.operations)."""
    return _download_url(request, request.result_key, "result")


def bulk_invalid_url(request: BulkRequest) -> str | None:
    """A fresh download URL of the failed rows' file (SPEC §1 `invalid`), or None when no row failed."""
    return _download_url(request, request.invalid_key, "invalid")


def bulk_absent_url(request: BulkRequest) -> str | None:
    """A fresh download URL of the file of the facility's patients no row matched, once completed."""
    return _download_url(request, request.absent_key, "absent")


def _download_url(request: BulkRequest, key: str, kind: str) -> str | None:
    """A fresh download URL of one of an ended request's files, or None when it has none (yet)."""
    if request.status not in (BulkStatus.COMPLETED, BulkStatus.FAILED) or not key:
        return None
    return storage.download_url(
        key, filename=f"bulk-{request.id}-{kind}.csv", expires_in=settings.RESULT_URL_EXPIRY_SECONDS
    )


def notify(request: BulkRequest) -> None:
    """The bulk-request webhook, stored in the caller's transaction (outbox)."""
    body: dict[str, str | None] = {
        "requestId": str(request.id),
        "status": request.status,
        "result": bulk_result_url(request),
    }
    if request.status == BulkStatus.FAILED and request.reason:
        body["reason"] = request.reason
    webhook_message_create(
        customer_id=request.customer_id,
        message_type=BULK_PATIENT_CREATE,
        data={"bulkPatientCreate": body},
        request_id=str(request.id),
        # The import's status goes ahead of the customer's document notices (its own queries' included), and
        # its statuses arrive in order (processing before completed).
        lane=Lane.PRIORITY,
        ordered=True,
    )


def bulk_request_fail(
    *, request_id: uuid.UUID, reason: str, source: str = BulkStatus.PROCESSING, **fields: object
) -> bool:
    """`source` (processing, or waiting for an upload refused before processing) -> failed, with its
    webhook; False when the request had left `source` already."""
    with transaction.atomic():
        failed = transition(
            request_id, source=source, target=BulkStatus.FAILED, reason=reason, phase=BulkPhase.DONE, **fields
        )
        if failed:
            notify(BulkRequest.objects.get(id=request_id))
    return failed
