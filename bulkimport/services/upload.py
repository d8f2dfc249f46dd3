"""Create a bulk request and take in its upload (SPEC §1, §2): the pre-signed URL, the local upload of the
embedded default, S3 upload polling, the operator's file submit, and the expiry of requests never uploaded.

The first complete upload wins by one conditional UPDATE (waiting -> processing); a file above the size
limit fails the request at once (waiting -> failed), with nothing to parse."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import BinaryIO

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from bulkimport.models import BulkPhase, BulkRequest, BulkStatus
from bulkimport.services import dispatch
from bulkimport.services.lifecycle import BulkRequestError, bulk_request_fail, input_key, notify, upload_key
from bulkimport.states import transition
from metriport_bulk.lib import storage
from metriport_bulk.lib.csvio import too_large_message
from patients.models import Customer
from patients.selectors import FacilityChoiceError, facility_resolve

UPLOAD_SALT = "metriport-bulk.upload"


USED_UPLOAD_URL = (
    "This upload URL was already used: an upload URL takes one file. To upload another file, create a new bulk "
    "request (POST /medical/v1/patient/bulk) and PUT the file to its uploadUrl."
)


class UploadRefused(Exception):
    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def bulk_request_create(*, customer: Customer, facility_id: str | None, dry_run: bool) -> BulkRequest:
    try:
        facility = facility_resolve(customer=customer, facility_id=facility_id)
    except FacilityChoiceError as exc:
        raise BulkRequestError(str(exc), status=exc.status) from exc
    request = BulkRequest(customer=customer, facility=facility, dry_run=dry_run)
    request.upload_key = upload_key(request)
    request.save()
    return request


def bulk_upload_url(request: BulkRequest) -> str:
    if storage.is_s3():
        return storage.presigned_put_url(request.upload_key, settings.UPLOAD_URL_EXPIRY_SECONDS)
    token = signing.dumps({"r": str(request.id)}, salt=UPLOAD_SALT)
    return settings.PUBLIC_BASE_URL + reverse("bulk-upload", args=[token])


def bulk_upload_claim(*, request_id: uuid.UUID, input_key: str, input_size: int | None) -> bool:
    """waiting -> processing for the first upload; False when another upload (or the expiry) won."""
    with transaction.atomic():
        claimed = transition(
            request_id,
            source=BulkStatus.WAITING,
            target=BulkStatus.PROCESSING,
            input_key=input_key,
            input_size=input_size,
            phase=BulkPhase.PARSING,
        )
        if claimed:
            notify(BulkRequest.objects.get(id=request_id))
            dispatch.parse_on_commit(request_id)
    return claimed


def _refuse_too_large(request_id: uuid.UUID, size: int) -> bool:
    """An upload above the size limit: waiting -> failed with a reason the customer can act on (one webhook,
    no parse). False when another upload or the expiry won."""
    return bulk_request_fail(
        request_id=request_id,
        reason=too_large_message(settings.BULK_MAX_FILE_BYTES, size=size),
        source=BulkStatus.WAITING,
        input_size=size,
    )


def bulk_upload_receive(*, request_id: uuid.UUID, stream: BinaryIO, content_length: int) -> None:
    """The local-storage upload (embedded default): streams the body to storage, first complete upload wins.

    Raises UploadRefused (409 already used, 403 expired, 413 too large)."""
    request = BulkRequest.objects.filter(id=request_id).first()
    if request is None:
        raise UploadRefused("The upload URL is not valid.", status=403)
    _refuse_unless_waiting(request)
    if content_length > settings.BULK_MAX_FILE_BYTES:
        # The upload happened, it is just too big: the request fails with a reason the customer can act on.
        _refuse_too_large(request.id, content_length)
        raise UploadRefused(too_large_message(settings.BULK_MAX_FILE_BYTES, size=content_length), status=413)
    # Each attempt writes its own key; the conditional claim decides which one becomes the input.
    attempt_key = f"{request.upload_key.rsplit('/', 1)[0]}/upload-{uuid.uuid4().hex}.csv"
    body = _LimitedReader(stream, content_length)
    storage.save(attempt_key, body)
    if body.remaining > 0:
        # The client went away mid-upload: a truncated file must not become the request's input.
        storage.delete(attempt_key)
        raise UploadRefused("The upload ended before Content-Length bytes arrived: send the file again.", status=400)
    if not bulk_upload_claim(request_id=request.id, input_key=attempt_key, input_size=content_length):
        storage.delete(attempt_key)
        request.refresh_from_db()
        _refuse_unless_waiting(request)
        raise UploadRefused(USED_UPLOAD_URL, status=409)


def _refuse_unless_waiting(request: BulkRequest) -> None:
    if request.status == BulkStatus.EXPIRED or (
        request.status == BulkStatus.WAITING
        and timezone.now() - request.created_at > timedelta(seconds=settings.UPLOAD_URL_EXPIRY_SECONDS)
    ):
        raise UploadRefused("The upload URL has expired: create a new bulk request.", status=403)
    if request.status != BulkStatus.WAITING:
        raise UploadRefused(USED_UPLOAD_URL, status=409)


class _LimitedReader:
    """Reads at most `limit` bytes of a WSGI input stream (which must not be read past Content-Length)."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream = stream
        self.remaining = limit

    def read(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.stream.read(size)
        self.remaining -= len(data)
        return data


def bulk_request_submit_file(*, request: BulkRequest, stream: BinaryIO, size: int) -> bool:
    """Operator path (bulk_create command, admin import page): stores a file as the request's upload and
    claims it, exactly as a customer's upload would be."""
    if size > settings.BULK_MAX_FILE_BYTES:
        _refuse_too_large(request.id, size)
        return False
    key = input_key(request)
    storage.save(key, stream)
    return bulk_upload_claim(request_id=request.id, input_key=key, input_size=size)


def bulk_uploads_poll() -> int:
    """S3: notices uploads to waiting requests (HEAD), copies each to its immutable input key and claims it.

    Whatever is written to the upload key after the copy is ignored: that is what single use means on S3.
    A file above the size limit is not copied: the request fails at once."""
    if not storage.is_s3():
        return 0
    noticed = 0
    window = timezone.now() - timedelta(seconds=settings.UPLOAD_URL_EXPIRY_SECONDS + 60)
    for request in BulkRequest.objects.filter(status=BulkStatus.WAITING, created_at__gte=window).order_by("created_at")[
        :500
    ]:
        size = storage.object_size(request.upload_key)
        if size is None:
            continue
        if size > settings.BULK_MAX_FILE_BYTES:
            noticed += _refuse_too_large(request.id, size)
            continue
        key = input_key(request)
        storage.copy(request.upload_key, key)
        if bulk_upload_claim(request_id=request.id, input_key=key, input_size=size):
            noticed += 1
    return noticed


def bulk_requests_expire() -> int:
    """waiting -> expired for requests without an upload within the URL's lifetime."""
    bulk_uploads_poll()  # an upload made just before expiry must win over the expiry
    cutoff = timezone.now() - timedelta(seconds=settings.UPLOAD_URL_EXPIRY_SECONDS)
    expired = 0
    for request_id in BulkRequest.objects.filter(status=BulkStatus.WAITING, created_at__lt=cutoff).values_list(
        "id", flat=True
    )[:1000]:
        expired += transition(request_id, source=BulkStatus.WAITING, target=BulkStatus.EXPIRED, phase=BulkPhase.DONE)
    return expired


def bulk_request_expire(*, request_id: uuid.UUID) -> bool:
    """Support action: ends a waiting request now (its upload URL stops being accepted)."""
    return transition(request_id, source=BulkStatus.WAITING, target=BulkStatus.EXPIRED, phase=BulkPhase.DONE)
