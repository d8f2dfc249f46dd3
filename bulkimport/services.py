"""Every write of the Bulk Patient Create pipeline (SPEC §2, §3, §5, §7).

Each step reads what it needs from the database, does its work and records progress in the same
transaction, so any step can be re-run (duplicate message, crashed worker, sweeper) with the same result.
Status changes go through `states.transition`; queue messages are sent on commit.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import BinaryIO

import orjson
from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.db.models import Count, F, Q, TextField
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils import timezone

from bulkimport.models import (
    BulkChunk,
    BulkPhase,
    BulkRequest,
    BulkRow,
    BulkRowError,
    BulkStatus,
    ChunkStatus,
    RowAction,
    RowStatus,
)
from bulkimport.states import transition
from bulkimport.validation import CsvFileError, CsvImport, RowResult, row_reason
from metriport_bulk.lib import storage
from metriport_bulk.lib.bulkdb import bound_cursor, copy_insert, relax_commit, update_by_id
from metriport_bulk.lib.csvio import ResultCsvWriter
from patients.matching import match_key, shares_zip
from patients.models import Customer, Patient, PatientFacility
from patients.selectors import FacilityChoiceError, facility_resolve
from patients.services import patient_fields, patient_match_keys_lock

logger = logging.getLogger(__name__)

# Patients created by a bulk row get an id derived from (request, row): a re-run of the row after a crash
# creates the same id, and the result file of a resumed run equals the one of an uninterrupted run.
PATIENT_ID_NAMESPACE = uuid.UUID("6f1d2a4e-1c55-4c0e-9a43-7d7c1b9e6b10")
PARSE_BATCH_SIZE = 2_000
BULK_WEBHOOK_TYPE = "medical.bulk-patient-create"
UPLOAD_SALT = "metriport-bulk.upload"


class BulkRequestError(Exception):
    """A customer-facing refusal (bad facility, bad parameter); `status` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ParseLeaseLost(Exception):
    """Another parser took over this request (the sweeper found this one stale); stop quietly."""


def _keys(request: BulkRequest) -> tuple[str, str, str]:
    base = f"bulk/{request.customer_id}/{request.id}"
    return f"{base}/upload.csv", f"{base}/input.csv", f"{base}/result.csv"


def _send_on_commit(actor_name: str, *args) -> None:
    from bulkimport import tasks

    actor = getattr(tasks, actor_name)
    transaction.on_commit(lambda: actor.send(*args))


# --- Create and upload ----------------------------------------------------------------------------------


def bulk_request_create(*, customer: Customer, facility_id: str | None, dry_run: bool) -> BulkRequest:
    try:
        facility = facility_resolve(customer=customer, facility_id=facility_id)
    except FacilityChoiceError as exc:
        raise BulkRequestError(str(exc), status=exc.status) from exc
    request = BulkRequest(customer=customer, facility=facility, dry_run=dry_run)
    request.upload_key = _keys(request)[0]
    request.save()
    return request


def bulk_upload_url(request: BulkRequest) -> str:
    if storage.is_s3():
        return storage.presigned_put_url(request.upload_key, settings.UPLOAD_URL_EXPIRY_SECONDS)
    token = signing.dumps({"r": str(request.id)}, salt=UPLOAD_SALT)
    return settings.PUBLIC_BASE_URL + reverse("bulk-upload", args=[token])


def bulk_invalid_url(request: BulkRequest) -> str | None:
    """A fresh download URL of the failed rows' file (SPEC §1 `invalid`), or None when no row failed."""
    if request.status not in (BulkStatus.COMPLETED, BulkStatus.FAILED) or not request.invalid_key:
        return None
    return storage.download_url(
        request.invalid_key, filename=f"bulk-{request.id}-invalid.csv", expires_in=settings.RESULT_URL_EXPIRY_SECONDS
    )


def bulk_result_url(request: BulkRequest) -> str | None:
    """A fresh download URL of the result file: a completed request's, or the partial one of a request the
    customer cancelled (bulkimport.operations)."""
    if request.status not in (BulkStatus.COMPLETED, BulkStatus.FAILED) or not request.result_key:
        return None
    return storage.download_url(
        request.result_key, filename=f"bulk-{request.id}-result.csv", expires_in=settings.RESULT_URL_EXPIRY_SECONDS
    )


def bulk_upload_claim(*, request_id, input_key: str, input_size: int | None) -> bool:
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
            request = BulkRequest.objects.get(id=request_id)
            _notify(request)
            _send_on_commit("bulk_parse", str(request_id))
    return claimed


class UploadRefused(Exception):
    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def bulk_upload_receive(*, request_id, stream: BinaryIO, content_length: int) -> None:
    """The local-storage upload (embedded default): streams the body to storage, first complete upload wins.

    Raises UploadRefused (409 already used, 403 expired, 413 too large)."""
    request = BulkRequest.objects.filter(id=request_id).first()
    if request is None:
        raise UploadRefused("The upload URL is not valid.", status=403)
    _refuse_unless_waiting(request)
    max_bytes = settings.BULK_MAX_FILE_BYTES
    if content_length > max_bytes:
        # The upload happened, it is just too big: the request fails with a reason the customer can act on.
        if bulk_upload_claim(request_id=request.id, input_key="", input_size=content_length):
            bulk_request_fail(request_id=request.id, reason=_too_large_reason(content_length))
        raise UploadRefused(_too_large_reason(content_length), status=413)
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
        raise UploadRefused("This upload URL was already used.", status=409)


def _refuse_unless_waiting(request: BulkRequest) -> None:
    if request.status == BulkStatus.EXPIRED or (
        request.status == BulkStatus.WAITING
        and timezone.now() - request.created_at > timedelta(seconds=settings.UPLOAD_URL_EXPIRY_SECONDS)
    ):
        raise UploadRefused("The upload URL has expired: create a new bulk request.", status=403)
    if request.status != BulkStatus.WAITING:
        raise UploadRefused("This upload URL was already used.", status=409)


def _too_large_reason(size: int) -> str:
    limit_mb = settings.BULK_MAX_FILE_BYTES / (1024 * 1024)
    return f"The file is {size / (1024 * 1024):.1f} MB, above the {limit_mb:g} MB limit: split it into smaller files."


class _LimitedReader:
    """Reads at most `limit` bytes of a WSGI input stream (which must not be read past Content-Length)."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream = stream
        self.remaining = limit

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self.stream.read(size)
        self.remaining -= len(data)
        return data


def bulk_uploads_poll() -> int:
    """S3: notices uploads to waiting requests (HEAD), copies each to its immutable input key and claims it.

    Whatever is written to the upload key after the copy is ignored: that is what single use means on S3."""
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
        _, input_key, _ = _keys(request)
        storage.copy(request.upload_key, input_key)
        if bulk_upload_claim(request_id=request.id, input_key=input_key, input_size=size):
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


# --- Parse and validate ---------------------------------------------------------------------------------


def bulk_request_parse(*, request_id) -> None:
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


def _heartbeat(request_id, token: int, **fields) -> None:
    if not BulkRequest.objects.filter(id=request_id, parse_attempts=token, phase=BulkPhase.PARSING).update(
        heartbeat_at=timezone.now(), **fields
    ):
        raise ParseLeaseLost()


def _parse(request: BulkRequest, token: int) -> None:
    with transaction.atomic():
        _heartbeat(request.id, token, total=0, processed=0, successful=0, failed=0)
        _delete_rows(request.id)
    if request.input_size is not None and request.input_size > settings.BULK_MAX_FILE_BYTES:
        bulk_request_fail(request_id=request.id, reason=_too_large_reason(request.input_size))
        return
    total = invalid = 0
    try:
        with storage.open_for_read(request.input_key) as stream:
            csv_import = CsvImport(stream, max_rows=settings.BULK_MAX_ROWS, max_bytes=settings.BULK_MAX_FILE_BYTES)
            _heartbeat(request.id, token, header=csv_import.header, warnings=list(csv_import.plan.warnings))
            rows = csv_import.rows()
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
    with transaction.atomic():
        if request.dry_run:
            BulkRow.objects.filter(request_id=request.id, status=RowStatus.PENDING).update(
                status=RowStatus.SUCCEEDED, action=RowAction.VALIDATED
            )
            _heartbeat(request.id, token, phase=BulkPhase.FINISHING)
            _send_on_commit("bulk_finish", str(request.id))
            return
        chunk_size = settings.BULK_CHUNK_SIZE
        chunks = [
            BulkChunk(
                request_id=request.id,
                index=i,
                first_number=start,
                last_number=min(start + chunk_size - 1, total),
                enqueued_at=timezone.now(),
            )
            for i, start in enumerate(range(1, total + 1, chunk_size))
        ]
        BulkChunk.objects.bulk_create(chunks)
        _heartbeat(request.id, token, phase=BulkPhase.APPLYING)
        chunk_ids = list(BulkChunk.objects.filter(request_id=request.id).values_list("id", flat=True))
        transaction.on_commit(lambda: _send_chunks(chunk_ids))


def _send_chunks(chunk_ids: Iterable[int]) -> None:
    from bulkimport import tasks

    for chunk_id in chunk_ids:
        tasks.bulk_apply_chunk.send(chunk_id)


ROW_COLUMNS = ("request_id", "number", "raw", "normalized", "status", "reason", "action")
ERROR_COLUMNS = ("request_id", "row_number", "code", "field", "message")


@dataclass(frozen=True, slots=True)
class _Stored:
    rows: int
    invalid: int

    def __bool__(self) -> bool:
        return self.rows > 0


def _store_rows(
    request: BulkRequest, token: int, batch: Iterable[RowResult], total_before: int, invalid_before: int
) -> _Stored:
    """Stores the next batch of rows (and their errors) in one transaction; an empty batch stores nothing.

    `batch` is consumed inside the COPY of the rows: each row is validated while PostgreSQL, on the other
    core, is still taking in the ones before it, instead of the two taking turns."""
    errors: list[tuple] = []
    count = invalid = 0

    def values() -> Iterator[tuple]:
        nonlocal count, invalid
        for result in batch:
            count += 1
            if not result.valid:
                invalid += 1
                errors.extend(_error_values(request.id, result))
            yield (
                request.id,
                result.number,
                result.raw,
                result.normalized,
                RowStatus.PENDING if result.valid else RowStatus.FAILED,
                row_reason(result.errors),
                "",
            )

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


def _error_values(request_id, result: RowResult) -> Iterator[tuple]:
    """The BulkRowError values (ERROR_COLUMNS) of a row's errors, cut to the columns' lengths."""
    return ((request_id, result.number, str(e.code), e.field[:60], e.message[:300]) for e in result.errors)


def _delete_rows(request_id) -> None:
    BulkRowError.objects.filter(request_id=request_id).delete()
    BulkChunk.objects.filter(request_id=request_id).delete()
    # Raw DELETE: Django's cascade collector would load 100k rows into memory first.
    BulkRow.objects.filter(request_id=request_id)._raw_delete(BulkRow.objects.db)


# --- Apply ----------------------------------------------------------------------------------------------


def _fairest_pending_chunk() -> BulkChunk | None:
    """Locks and returns the pending chunk with the least progress among all processing requests: the lowest
    index, so every request's first chunks come before any request's later ones and a small request never
    waits behind a big one (SKIP LOCKED: chunks being applied by other workers are passed over)."""
    return (
        BulkChunk.objects.select_for_update(of=("self",), skip_locked=True)
        .filter(status=ChunkStatus.PENDING, request__status=BulkStatus.PROCESSING, request__phase=BulkPhase.APPLYING)
        .order_by("index", "id")
        .select_related("request")
        .first()
    )


def bulk_chunk_apply(*, chunk_id: int, fair: bool = False) -> None:
    """Creates or updates the patients of one chunk's valid rows, links them to the facility and starts
    their Document Queries, all in one transaction. Rows already applied are skipped: re-runs are no-ops.

    `fair` (what the actor does): the message is a token, not an order. It applies the fairest pending chunk
    of any request (_fairest_pending_chunk), its own chunk when nothing is fairer. There is one message per
    chunk, so every chunk still gets one; the order in which they are applied is decided here, round-robin
    by progress, instead of by the broker's first come, first served."""
    with transaction.atomic():
        chunk = _fairest_pending_chunk() if fair else None
        if chunk is None:
            # of=("self",): lock the chunk only. A plain FOR UPDATE would also lock the joined request row
            # and make the chunks of a request run one at a time.
            chunk = (
                BulkChunk.objects.select_for_update(of=("self",)).filter(id=chunk_id).select_related("request").first()
            )
        if chunk is None or chunk.status == ChunkStatus.DONE:
            return
        request = chunk.request
        if request.status != BulkStatus.PROCESSING or request.phase != BulkPhase.APPLYING:
            return
        relax_commit()
        BulkChunk.objects.filter(id=chunk.id).update(attempts=F("attempts") + 1)
        rows = _pending_rows(request.id, first=chunk.first_number, last=chunk.last_number)
        applied = _apply_rows(request, rows, first_chunk=chunk.index == 0)
        BulkChunk.objects.filter(id=chunk.id).update(status=ChunkStatus.DONE)
        # Lock the request last: it serializes chunk completions so exactly one sees "no chunk left".
        locked = BulkRequest.objects.select_for_update().get(id=request.id)
        if locked.status != BulkStatus.PROCESSING:
            # Cancelled while this chunk ran: its rows are reported as cancelled, so none may be applied.
            transaction.set_rollback(True)
            return
        BulkRequest.objects.filter(id=request.id).update(
            processed=F("processed") + applied, successful=F("successful") + applied, heartbeat_at=timezone.now()
        )
        if (
            locked.phase == BulkPhase.APPLYING
            and not BulkChunk.objects.filter(request_id=request.id, status=ChunkStatus.PENDING).exists()
        ):
            BulkRequest.objects.filter(id=request.id, phase=BulkPhase.APPLYING).update(phase=BulkPhase.FINISHING)
            _send_on_commit("bulk_finish", str(request.id))


@dataclass(slots=True)
class PendingRow:
    """What deciding a row's patient needs; the row's full normalized values stay in the database."""

    id: int
    number: int
    match_key: str
    zips: list[str]
    opted_out: bool
    patient_id: uuid.UUID | None = None
    action: str = ""


def _pending_row(row_id: int, number: int, first: str, last: str, dob: str, gender: str, zips, opted_out) -> PendingRow:
    key = match_key(first_name=first, last_name=last, dob=dob, gender_at_birth=gender)
    return PendingRow(row_id, number, key, sorted(set(zips)), bool(opted_out))


# The fields of a pending row that matching needs, read from its normalized JSON by the database.
_PENDING_SQL = """
SELECT id, number, normalized->>'firstName', normalized->>'lastName', normalized->>'dob',
       normalized->>'genderAtBirth', ARRAY(SELECT a->>'zip' FROM jsonb_array_elements(normalized->'addresses') a),
       coalesce((normalized->>'hieOptOut')::boolean, false)
FROM bulkimport_bulkrow
WHERE request_id = %s AND status = 'pending' AND number BETWEEN %s AND %s
ORDER BY number
LIMIT %s
"""


def _pending_rows(request_id, *, first: int = 1, last: int = 2**31 - 1, limit: int | None = None) -> list[PendingRow]:
    """The pending rows numbered first..last, in row order (at most `limit`)."""
    limit = limit or last - first + 1
    if connection.vendor == "postgresql":
        with bound_cursor() as cursor:
            cursor.execute(_PENDING_SQL, [request_id, first, last, limit])
            return [_pending_row(*values) for values in cursor.fetchall()]
    stored = (
        BulkRow.objects.filter(request_id=request_id, status=RowStatus.PENDING, number__gte=first, number__lte=last)
        .order_by("number")
        .values_list("id", "number", "normalized")[:limit]
    )
    return [
        _pending_row(
            row_id,
            number,
            n["firstName"],
            n["lastName"],
            n["dob"],
            n["genderAtBirth"],
            [address["zip"] for address in n["addresses"]],
            n.get("hieOptOut"),
        )
        for row_id, number, n in stored
    ]


@dataclass(slots=True)
class Candidate:
    """A patient a row may be: an existing one, or one created by an earlier row of this chunk. `source_row`
    is the last row matched to it: the patient ends up holding that row's values."""

    id: uuid.UUID
    zips: list[str]
    match_key: str
    created: bool
    source_row: int | None = None


# Columns a row writes to its patient: the same values as patients.services.patient_fields, computed by
# PostgreSQL from the row's normalized JSON `n` (tests/bulkimport/test_apply.py holds the two equal).
# match_key is not here: a patient keeps the key it was created with.
_PHONES = "CASE jsonb_typeof(n->'phones') WHEN 'array' THEN n->'phones' ELSE '[]'::jsonb END"
_EMAILS = "CASE jsonb_typeof(n->'emails') WHEN 'array' THEN n->'emails' ELSE '[]'::jsonb END"
_PATIENT_SQL = {
    "external_id": "coalesce(n->>'externalId', '')",
    "first_name": "n->>'firstName'",
    "last_name": "n->>'lastName'",
    "dob": "(n->>'dob')::date",
    "gender_at_birth": "n->>'genderAtBirth'",
    "ssn": "coalesce(n->>'ssn', '')",
    "drivers_license": "nullif(n->'driversLicense', 'null'::jsonb)",
    "addresses": "n->'addresses'",
    "contacts": (
        "(SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object("
        "'phone', nullif(p.v #>> '{}', ''), 'email', nullif(e.v #>> '{}', ''))) ORDER BY coalesce(p.i, e.i)), "
        "'[]'::jsonb) "
        f"FROM jsonb_array_elements({_PHONES}) WITH ORDINALITY p(v, i) "
        f"FULL JOIN jsonb_array_elements({_EMAILS}) WITH ORDINALITY e(v, i) ON p.i = e.i)"
    ),
    "zips": (
        "(SELECT coalesce(jsonb_agg(z ORDER BY z), '[]'::jsonb) "
        "FROM (SELECT DISTINCT a->>'zip' COLLATE \"C\" AS z FROM jsonb_array_elements(n->'addresses') a) AS s)"
    ),
}


def _apply_rows(request: BulkRequest, rows: list[PendingRow], *, first_chunk: bool = False) -> int:
    """Create-or-update for `rows` (valid, pending, in row order) inside the caller's transaction: decides
    each row's patient, writes the patients, links them to the facility, marks the rows succeeded and starts
    the Document Queries of the rows not opted out. Returns the number of rows applied."""
    from docqueries.services import document_queries_start

    if not rows:
        return 0
    keys = {row.match_key for row in rows}
    patient_match_keys_lock(request.customer_id, keys)
    candidates: dict[str, list[Candidate]] = {}
    for patient_id, key, zips in _existing_patients(request.customer_id, keys):
        candidates.setdefault(key, []).append(Candidate(patient_id, zips, key, created=False))
    touched: dict[uuid.UUID, Candidate] = {}
    id_prefix = f"{request.id}:"
    for row in rows:
        match = next((c for c in candidates.get(row.match_key, []) if shares_zip(c.zips, row.zips)), None)
        if match is None:
            match = Candidate(
                uuid.uuid5(PATIENT_ID_NAMESPACE, f"{id_prefix}{row.number}"), row.zips, row.match_key, created=True
            )
            candidates.setdefault(row.match_key, []).append(match)
            row.action = RowAction.CREATED
        else:
            match.zips = row.zips  # the patient now holds this row's addresses
            row.action = RowAction.UPDATED
        match.source_row = row.id
        touched[match.id] = match
        row.patient_id = match.id
    # Rows are in number order; the range lets PostgreSQL reach them by index, not by scanning the table.
    numbers = (rows[0].number, rows[-1].number)
    _write_patients(request, list(touched.values()), numbers)
    _mark_applied(request, rows, numbers)
    opted_in = list(dict.fromkeys(row.patient_id for row in rows if not row.opted_out))
    if opted_in:
        document_queries_start(
            customer_id=request.customer_id, patient_ids=opted_in, bulk_request_id=request.id, express=first_chunk
        )
    return len(rows)


def _existing_patients(customer_id, keys: set[str]) -> list[tuple[uuid.UUID, str, list[str]]]:
    """(id, match_key, zips) of the customer's patients with one of `keys`, oldest first."""
    if connection.vendor == "postgresql":
        with bound_cursor() as cursor:
            # One index lookup per key (OFFSET 0 keeps the planner from scanning all of the customer's
            # patients, which it does on freshly filled tables whose statistics say they are tiny).
            cursor.execute(
                """
                SELECT p.id, p.match_key, ARRAY(SELECT jsonb_array_elements_text(p.zips))
                FROM unnest(%s::text[]) AS k(key)
                JOIN LATERAL (
                    SELECT id, match_key, zips, created_at FROM patients_patient
                    WHERE customer_id = %s AND match_key = k.key OFFSET 0
                ) AS p ON true
                ORDER BY p.created_at, p.id
                """,
                [list(keys), customer_id],
            )
            return cursor.fetchall()
    return list(
        Patient.objects.filter(customer_id=customer_id, match_key__in=keys)
        .order_by("created_at", "id")
        .values_list("id", "match_key", "zips")
    )


def _write_patients(request: BulkRequest, patients: list[Candidate], numbers: tuple[int, int]) -> None:
    now = timezone.now()
    created = [p for p in patients if p.created]
    updated = [p for p in patients if not p.created]
    # Created one microsecond apart, in row order: lists paginate by a cursor on created_at, and a cursor
    # cannot step through thousands of equal values.
    created_at = [now + timedelta(microseconds=i) for i in range(len(created))]
    if connection.vendor == "postgresql":
        _write_patients_sql(request, created, created_at, updated, now, numbers)
    else:
        _write_patients_orm(request, created, created_at, updated, now)


def _mark_applied(request: BulkRequest, rows: list[PendingRow], numbers: tuple[int, int]) -> None:
    if connection.vendor != "postgresql":
        update_by_id(
            BulkRow,
            ("status", "action", "patient_id"),
            [(row.id, RowStatus.SUCCEEDED, row.action, row.patient_id) for row in rows],
        )
        return
    with bound_cursor() as cursor:
        cursor.execute(
            """
            UPDATE bulkimport_bulkrow AS b SET status = %s, action = d.action, patient_id = d.patient_id
            FROM unnest(%s::bigint[], %s::text[], %s::uuid[]) AS d(id, action, patient_id)
            WHERE b.id = d.id AND b.request_id = %s AND b.number BETWEEN %s AND %s
            """,
            [
                RowStatus.SUCCEEDED,
                [row.id for row in rows],
                [row.action for row in rows],
                [row.patient_id for row in rows],
                request.id,
                *numbers,
            ],
        )


def _write_patients_sql(
    request: BulkRequest,
    created: list[Candidate],
    created_at: list,
    updated: list[Candidate],
    now,
    numbers: tuple[int, int],
) -> None:
    """PostgreSQL: four set-based statements; the rows' values go from bulk row to patient inside the
    database, never through Python."""
    names = list(_PATIENT_SQL)
    with bound_cursor() as cursor:
        if created:
            cursor.execute(
                f"""
                INSERT INTO patients_patient (id, customer_id, {", ".join(names)}, match_key, created_at, updated_at)
                SELECT d.id, %s, {", ".join(_PATIENT_SQL.values())}, d.match_key, d.created_at, d.created_at
                FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::timestamptz[]) AS d(id, row_id, match_key, created_at)
                JOIN (SELECT id, normalized AS n FROM bulkimport_bulkrow WHERE request_id = %s AND number BETWEEN %s AND %s) AS r ON r.id = d.row_id
                """,
                [
                    request.customer_id,
                    [p.id for p in created],
                    [p.source_row for p in created],
                    [p.match_key for p in created],
                    created_at,
                    request.id,
                    *numbers,
                ],
            )
        if updated:
            assignments = ", ".join(f"{name} = {expression}" for name, expression in _PATIENT_SQL.items())
            cursor.execute(
                f"""
                UPDATE patients_patient AS p SET {assignments}, updated_at = %s
                FROM unnest(%s::uuid[], %s::bigint[]) AS d(id, row_id)
                JOIN (SELECT id, normalized AS n FROM bulkimport_bulkrow WHERE request_id = %s AND number BETWEEN %s AND %s) AS r ON r.id = d.row_id
                WHERE p.id = d.id
                """,
                [now, [p.id for p in updated], [p.source_row for p in updated], request.id, *numbers],
            )
        cursor.execute(
            """
            INSERT INTO patients_patientfacility (patient_id, facility_id, created_at)
            SELECT patient_id, %s, %s FROM unnest(%s::uuid[]) AS patient_id
            ON CONFLICT DO NOTHING
            """,
            [request.facility_id, now, [p.id for p in created + updated]],
        )


def _write_patients_orm(
    request: BulkRequest, created: list[Candidate], created_at: list, updated: list[Candidate], now
) -> None:
    """Elsewhere (the embedded SQLite default): the same writes through the ORM, values built in Python."""
    sources = dict(
        BulkRow.objects.filter(id__in=[p.source_row for p in created + updated]).values_list("id", "normalized")
    )
    new = []
    for candidate, at in zip(created, created_at, strict=True):
        fields = patient_fields(sources[candidate.source_row])
        fields["match_key"] = candidate.match_key
        new.append(Patient(id=candidate.id, customer_id=request.customer_id, created_at=at, updated_at=at, **fields))
    Patient.objects.bulk_create(new, batch_size=500)
    # bulk_create let auto_now_add overwrite created_at: put the distinct values back.
    for patient, at in zip(new, created_at, strict=True):
        patient.created_at = patient.updated_at = at
    Patient.objects.bulk_update(new, ["created_at", "updated_at"], batch_size=500)
    changed = []
    for candidate in updated:
        fields = patient_fields(sources[candidate.source_row])
        del fields["match_key"]
        changed.append(Patient(id=candidate.id, updated_at=now, **fields))
    if changed:
        Patient.objects.bulk_update(changed, [*_PATIENT_SQL, "updated_at"], batch_size=500)
    PatientFacility.objects.bulk_create(
        [PatientFacility(patient_id=p.id, facility_id=request.facility_id) for p in created + updated],
        batch_size=500,
        ignore_conflicts=True,
    )


# --- Finish, fail ---------------------------------------------------------------------------------------


def bulk_request_finish(*, request_id) -> None:
    """Writes the result CSV and completes the request (once: the transition is conditional)."""
    request = BulkRequest.objects.filter(id=request_id, status=BulkStatus.PROCESSING, phase=BulkPhase.FINISHING).first()
    if request is None:
        return
    if not _documents_ready(request):
        # The medical data is not there yet: wait for it. The end of the last query (or the sweeper, at the
        # latest at the deadline) moves the request back to finishing.
        BulkRequest.objects.filter(id=request.id, phase=BulkPhase.FINISHING).update(
            phase=BulkPhase.DOCUMENTS, heartbeat_at=timezone.now()
        )
        # A query that ended between the check and the phase change found no request waiting: look again.
        bulk_documents_check(request_ids=[request.id])
        return
    BulkRequest.objects.filter(id=request.id).update(heartbeat_at=timezone.now())
    _, _, result_key = _keys(request)
    invalid_key = _write_result(request, result_key)
    succeeded, failed = _row_counts(request.id)
    with transaction.atomic():
        if transition(
            request.id,
            source=BulkStatus.PROCESSING,
            target=BulkStatus.COMPLETED,
            phase=BulkPhase.DONE,
            result_key=result_key,
            invalid_key=invalid_key,
            total=succeeded + failed,
            processed=succeeded + failed,
            successful=succeeded,
            failed=failed,
        ):
            request.refresh_from_db()
            _notify(request)


def _documents_deadline_passed(request: BulkRequest) -> bool:
    started = request.started_at or request.created_at
    return timezone.now() - started > timedelta(seconds=settings.BULK_DOCUMENT_DEADLINE_SECONDS)


def _documents_ready(request: BulkRequest) -> bool:
    """True when every Document Query of the request has ended, or its deadline has passed."""
    from docqueries.services import bulk_queries_open

    return request.dry_run or _documents_deadline_passed(request) or not bulk_queries_open(bulk_request_id=request.id)


def bulk_documents_check(*, request_ids: Iterable) -> int:
    """Requests waiting for medical data whose queries have all ended (or whose deadline passed) go on to
    finish. Called when queries end (by signal) and by the sweeper; the phase change is conditional, so
    exactly one caller sends the finish. Returns how many went on."""
    moved = 0
    for request in BulkRequest.objects.filter(
        id__in=list(request_ids), status=BulkStatus.PROCESSING, phase=BulkPhase.DOCUMENTS
    ):
        if not _documents_ready(request):
            continue
        if BulkRequest.objects.filter(id=request.id, phase=BulkPhase.DOCUMENTS).update(
            phase=BulkPhase.FINISHING, heartbeat_at=timezone.now()
        ):
            _send_now("bulk_finish", str(request.id))
            moved += 1
    return moved


def on_document_queries_ended(sender, *, bulk_request_ids, **kwargs) -> None:
    bulk_documents_check(request_ids=bulk_request_ids)


def _row_counts(request_id) -> tuple[int, int]:
    """(succeeded, failed) rows of a request, counted in the database."""
    counts = dict(
        BulkRow.objects.filter(request_id=request_id).values_list("status").annotate(n=Count("id")).order_by()
    )
    return counts.get(RowStatus.SUCCEEDED, 0), counts.get(RowStatus.FAILED, 0)


def invalid_key_of(result_key: str) -> str:
    """Where the file of a result's failed rows goes (SPEC §1 `invalid`): beside the result file."""
    return result_key.removesuffix(".csv") + "-invalid.csv"


def _write_result(request: BulkRequest, result_key: str) -> str:
    """Writes the result file and, when rows failed, the file of the failed rows only, in the input's own
    columns plus `reason`, ready to be fixed and uploaded again. Returns the latter's key, or ""."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as invalid_out:
        writer = ResultCsvWriter(out, request.header)
        invalid_writer = ResultCsvWriter(invalid_out, request.header, columns=("reason",))
        failed = 0
        for raw, patient_id, status, reason, action, opted_out, query_status, documents in _result_rows(request.id):
            cells = orjson.loads(raw)
            writer.write(
                cells,
                metriport_id=str(patient_id) if patient_id else None,
                status=status,
                reason=reason,
                action=action,
                document_query=_document_query_word(status, action, opted_out, query_status),
                documents="" if query_status != "completed" or documents is None else str(documents),
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


def _document_query_word(status: str, action: str, opted_out, query_status: str | None) -> str:
    """The result file's `documentQuery` cell (SPEC §7): how the row's patient's query ended."""
    if status != RowStatus.SUCCEEDED or action == RowAction.VALIDATED:
        return ""
    if query_status is None:
        return "opted out" if opted_out in (True, "t") else ""
    # Still processing when the result is written: the request's deadline passed without an answer.
    return {"completed": "completed", "failed": "failed"}.get(query_status, "timed out")


def _result_rows(request_id) -> Iterator[tuple]:
    """(raw cells as JSON text, patient id, status, reason, action, opted out, its Document Query's status or
    None, that query's document count) of every row, in row order. The raw cells are decoded by the caller
    with orjson: Django's JSONField decoding costs more.

    PostgreSQL: one COPY TO: the server streams rows while the caller writes the ones before them, instead
    of the two taking turns batch by batch."""
    if connection.vendor == "postgresql":
        with bound_cursor() as cursor, cursor.copy(_RESULT_COPY_SQL, [request_id]) as copy:
            yield from copy.rows()
        return
    from docqueries.models import DocumentQuery

    queries = {
        patient_id: (status, len(documents or []))
        for patient_id, status, documents in DocumentQuery.objects.filter(bulk_request_id=request_id).values_list(
            "patient_id", "status", "documents"
        )
    }
    opted_out_patients = set(
        Patient.objects.filter(
            hie_opt_out=True, id__in=BulkRow.objects.filter(request_id=request_id).values("patient_id")
        ).values_list("id", flat=True)
    )
    rows = (
        BulkRow.objects.filter(request_id=request_id)
        .order_by("number")
        .annotate(raw_text=Cast("raw", TextField()))
        .values_list("raw_text", "patient_id", "status", "reason", "action", "normalized")
    )
    for raw, patient_id, status, reason, action, normalized in rows.iterator(chunk_size=2000):
        query_status, documents = queries.get(patient_id, (None, None))
        opted_out = bool((normalized or {}).get("hieOptOut")) or patient_id in opted_out_patients
        yield raw, patient_id, status, reason, action, opted_out, query_status, documents


# Each row with its patient's Document Query of this request (COPY's text format: NULL is \N, booleans t/f).
_RESULT_COPY_SQL = """
COPY (
    SELECT r.raw::text, r.patient_id, r.status, r.reason, r.action,
           coalesce((r.normalized->>'hieOptOut')::boolean, false) OR coalesce(p.hie_opt_out, false),
           q.status, jsonb_array_length(q.documents)
    FROM bulkimport_bulkrow AS r
    LEFT JOIN docqueries_documentquery AS q ON q.patient_id = r.patient_id AND q.bulk_request_id = r.request_id
    LEFT JOIN patients_patient AS p ON p.id = r.patient_id
    WHERE r.request_id = %s ORDER BY r.number
) TO STDOUT
"""


def bulk_request_fail(*, request_id, reason: str) -> bool:
    with transaction.atomic():
        failed = transition(
            request_id, source=BulkStatus.PROCESSING, target=BulkStatus.FAILED, reason=reason, phase=BulkPhase.DONE
        )
        if failed:
            _notify(BulkRequest.objects.get(id=request_id))
    return failed


def _notify(request: BulkRequest) -> None:
    """The bulk-request webhook, stored in the caller's transaction (outbox)."""
    from webhooks.services import webhook_message_create

    body = {"requestId": str(request.id), "status": request.status, "result": bulk_result_url(request)}
    if request.status == BulkStatus.FAILED and request.reason:
        body["reason"] = request.reason
    webhook_message_create(
        customer_id=request.customer_id,
        message_type=BULK_WEBHOOK_TYPE,
        data={"bulkPatientCreate": body},
        request_id=str(request.id),
    )


# --- Sweeper --------------------------------------------------------------------------------------------


def bulk_sweep() -> None:
    """Scheduler job: notice uploads, expire, and resume processing requests whose worker went away."""
    from bulkimport.operations import bulk_cancellations_settle

    bulk_requests_expire()  # polls S3 uploads first
    bulk_requests_resume()
    bulk_cancellations_settle()


def bulk_requests_resume(*, force: bool = False, request_id=None) -> int:
    """Re-sends the next step of stale processing requests. Each step is idempotent, so a duplicate send
    (the original worker was merely slow) costs only a no-op."""
    now = timezone.now()
    stale = now - timedelta(seconds=0 if force else settings.BULK_STALE_SECONDS)
    requests = BulkRequest.objects.filter(status=BulkStatus.PROCESSING)
    if request_id is not None:
        requests = requests.filter(id=request_id)
    resumed = 0
    for request in requests.only("id", "phase", "heartbeat_at"):
        if request.phase == BulkPhase.PARSING and (
            force or request.heartbeat_at is None or request.heartbeat_at < stale
        ):
            if force:
                BulkRequest.objects.filter(id=request.id).update(heartbeat_at=None)
            _send_now("bulk_parse", str(request.id))
            resumed += 1
        elif request.phase == BulkPhase.APPLYING:
            pending = BulkChunk.objects.filter(request_id=request.id, status=ChunkStatus.PENDING)
            if not pending.exists():
                if BulkRequest.objects.filter(id=request.id, phase=BulkPhase.APPLYING).update(
                    phase=BulkPhase.FINISHING
                ):
                    _send_now("bulk_finish", str(request.id))
                    resumed += 1
                continue
            stuck = list(
                pending.filter(
                    Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale), updated_at__lt=stale
                ).values_list("id", flat=True)
            )
            if stuck:
                BulkChunk.objects.filter(id__in=stuck).update(enqueued_at=now)
                _send_chunks(stuck)
                resumed += 1
        elif request.phase == BulkPhase.DOCUMENTS:
            resumed += bulk_documents_check(request_ids=[request.id])
        elif request.phase == BulkPhase.FINISHING and (
            force or request.heartbeat_at is None or request.heartbeat_at < stale
        ):
            _send_now("bulk_finish", str(request.id))
            resumed += 1
    return resumed


def _send_now(actor_name: str, *args) -> None:
    from bulkimport import tasks

    getattr(tasks, actor_name).send(*args)


def bulk_request_submit_file(*, request: BulkRequest, stream: BinaryIO, size: int) -> bool:
    """Operator path (bulk_create command, admin import page): stores a file as the request's upload and
    claims it, exactly as a customer's upload would be."""
    if size > settings.BULK_MAX_FILE_BYTES:
        if bulk_upload_claim(request_id=request.id, input_key="", input_size=size):
            bulk_request_fail(request_id=request.id, reason=_too_large_reason(size))
        return False
    _, input_key, _ = _keys(request)
    storage.save(input_key, stream)
    return bulk_upload_claim(request_id=request.id, input_key=input_key, input_size=size)


# --- Operations: reprocess, expire one ------------------------------------------------------------------


class ReprocessRefused(Exception):
    pass


def bulk_request_reprocess(*, request_id, failed_only: bool = False) -> str:
    """What support and operators use after a fix (a normalizer bug, a stuck worker).

    - processing: resumes it now (the sweeper would, after BULK_STALE_SECONDS).
    - completed: re-validates rows from the stored input file (only the failed ones with failed_only),
      applies the rows that are now valid, rewrites the result CSV and sends a new `completed` webhook.
      The status stays `completed`: the state machine has no way back.
    Returns a one-line description of what was done; raises ReprocessRefused otherwise."""
    request = BulkRequest.objects.filter(id=request_id).first()
    if request is None:
        raise ReprocessRefused(f"No bulk request {request_id}.")
    if request.status == BulkStatus.PROCESSING:
        resumed = bulk_requests_resume(force=True, request_id=request.id)
        return f"resumed ({resumed} step(s) re-sent, phase {request.phase or 'none'})"
    if request.status != BulkStatus.COMPLETED:
        raise ReprocessRefused(
            f"A {request.status} request cannot be reprocessed: only processing (resume) or completed requests can."
        )
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
                rows = _pending_rows(request.id, limit=batch)
                if not rows:
                    break
                applied += _apply_rows(request, rows)
    else:
        BulkRow.objects.filter(request_id=request.id, status=RowStatus.PENDING).update(
            status=RowStatus.SUCCEEDED, action=RowAction.VALIDATED
        )
    invalid_key = _write_result(request, request.result_key)
    succeeded, failed = _row_counts(request.id)
    with transaction.atomic():
        BulkRequest.objects.filter(id=request.id).update(
            successful=succeeded,
            failed=failed,
            processed=succeeded + failed,
            invalid_key=invalid_key,
            heartbeat_at=timezone.now(),
        )
        _notify(BulkRequest.objects.get(id=request.id))
    return f"re-validated {revalidated} row(s), applied {applied}"


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
            [values for result in batch for values in _error_values(request.id, result)],
        )
        ids = dict(BulkRow.objects.filter(request_id=request.id, number__in=by_number).values_list("number", "id"))
        update_by_id(
            BulkRow,
            ("normalized", "status", "reason", "action", "patient_id"),
            [
                (
                    ids[r.number],
                    r.normalized,
                    RowStatus.PENDING if r.valid else RowStatus.FAILED,
                    row_reason(r.errors),
                    "",
                    None,
                )
                for r in batch
            ],
        )
    return len(batch)


def bulk_request_expire(*, request_id) -> bool:
    """Support action: ends a waiting request now (its upload URL stops being accepted)."""
    return transition(request_id, source=BulkStatus.WAITING, target=BulkStatus.EXPIRED, phase=BulkPhase.DONE)


def bulk_request_resend_webhook(*, request_id) -> bool:
    """Support action: a new webhook message with the request's current status (and a fresh result URL)."""
    request = BulkRequest.objects.filter(id=request_id).first()
    if request is None or request.status not in (BulkStatus.PROCESSING, BulkStatus.COMPLETED, BulkStatus.FAILED):
        return False
    with transaction.atomic():
        _notify(request)
    return True


# --- Used by bulkimport.operations (confirm, cancel) ----------------------------------------------------


def cancelled_result_key(request: BulkRequest) -> str:
    """A key of its own: a finish that lost the race to the cancel may still be writing result.csv."""
    return _keys(request)[2].replace("result.csv", "result-cancelled.csv")


write_result = _write_result
row_counts = _row_counts
notify = _notify
