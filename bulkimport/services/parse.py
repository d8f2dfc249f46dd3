"""Parse and validate a request's input file (SPEC §3, §4): every row is stored with its normalized values,
its errors and its status, in batches, under a lease (a crashed parser's work is taken over by the sweeper,
and a parser that lost its lease writes nothing more). A large file is scanned first and parsed in segments
by several workers at once (below). Then the request moves on: a dry run to finishing, an import to
applying, with one chunk of rows per apply message."""

from __future__ import annotations

import itertools
import logging
import time
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, IntegerField, Q, QuerySet, Value
from django.utils import timezone

from bulkimport.models import (
    BulkChunk,
    BulkParseSegment,
    BulkPhase,
    BulkRequest,
    BulkRow,
    BulkRowError,
    BulkStatus,
    ChunkStatus,
    RowStatus,
)
from bulkimport.services import dispatch
from bulkimport.services.budget import import_budget_refusal
from bulkimport.services.lifecycle import bulk_request_fail
from bulkimport.services.plan import bulk_request_plan, plan_document_queries, plan_dry_run_rest, row_match_key
from bulkimport.states import phase_transition
from bulkimport.validation import CsvFileError, CsvImport, RowResult, Segment, row_reason
from cohorts.services import cohorts_for_import
from docqueries.services import express_queries_waiting
from metriport_bulk.lib import storage
from metriport_bulk.lib.bulkdb import copy_insert, exists_shared
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
        segmented = _parse(request, token)
    except ParseLeaseLost:
        logger.info("bulk request %s: parse lease lost, another worker continues", request.id)
        return
    except Exception:
        # Release the lease so the retry of this message can take it at once.
        BulkRequest.objects.filter(id=request.id, parse_attempts=token).update(heartbeat_at=None)
        raise
    if segmented:
        # This worker parses segments too. Outside the lease's handler above: a segment's failure is that
        # segment's (released for another worker), never a reason to start the whole file again.
        bulk_segments_parse(request_id=request.id, token=token)


def _heartbeat(request_id: uuid.UUID, token: int, **fields: Any) -> None:
    if not BulkRequest.objects.filter(id=request_id, parse_attempts=token, phase=BulkPhase.PARSING).update(
        heartbeat_at=timezone.now(), **fields
    ):
        raise ParseLeaseLost()


# A file this many bytes per row of BULK_PARSE_SEGMENT_ROWS or more is scanned for its segments first (a row
# of a patient's required cells is longer); a smaller one is parsed in one piece without the scan.
_SCAN_BYTES_PER_ROW = 40


def _parse(request: BulkRequest, token: int) -> bool:
    """Parses the file, or scans it and leaves its segments to the workers: True then."""
    with transaction.atomic():
        _heartbeat(request.id, token, total=0, processed=0, successful=0, failed=0)
        _delete_rows(request.id)
    if request.input_size is not None and request.input_size > settings.BULK_MAX_FILE_BYTES:
        bulk_request_fail(
            request_id=request.id, reason=too_large_message(settings.BULK_MAX_FILE_BYTES, size=request.input_size)
        )
        return False
    segment_rows = settings.BULK_PARSE_SEGMENT_ROWS
    total = invalid = 0
    try:
        with storage.open_for_read(request.input_key) as stream:
            if segment_rows and (request.input_size or 0) >= segment_rows * _SCAN_BYTES_PER_ROW:
                # Structure only, every file-level check included: a file error still stores nothing.
                scan = CsvImport(
                    stream, max_rows=settings.BULK_MAX_ROWS, max_bytes=settings.BULK_MAX_FILE_BYTES, track_offsets=True
                )
                _heartbeat(request.id, token, header=scan.header, warnings=list(scan.plan.warnings))
                segments = scan.segments(segment_rows)
                if len(segments) > 1:
                    _segments_start(request.id, token, scan.header_end, segments)
                    return True
                stream.seek(0)  # one segment: parsed here, as a smaller file is
            csv_import = CsvImport(stream, max_rows=settings.BULK_MAX_ROWS, max_bytes=settings.BULK_MAX_FILE_BYTES)
            _heartbeat(request.id, token, header=csv_import.header, warnings=list(csv_import.plan.warnings))
            rows = checked_rows(request, csv_import)
            fence = _RequestFence(request.id, token)
            while stored := _store_rows(request, fence, itertools.islice(rows, PARSE_BATCH_SIZE), total, invalid):
                total += stored.rows
                invalid += stored.invalid
    except CsvFileError as exc:
        _file_failed(request.id, token, exc)
        return False
    if total == 0:
        bulk_request_fail(request_id=request.id, reason="The file has a header but no patient rows.")
        return False
    _plan_and_move_on(request, token, total)
    return False


def _file_failed(request_id: uuid.UUID, token: int, exc: CsvFileError) -> None:
    with transaction.atomic():
        # The rows stored before the error go, and so do the counts they made.
        _heartbeat(request_id, token, total=0, processed=0, successful=0, failed=0)
        _delete_rows(request_id)
    bulk_request_fail(request_id=request_id, reason=exc.message)


def _plan_and_move_on(request: BulkRequest, token: int, total: int) -> None:
    """Every row is stored: the plan, then a dry run to finishing and an import (within its customer's
    Document Query budget) to applying, with its chunks sent."""
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


# Segments: a large file's rows are validated and stored by several workers at once. Messages name the
# request, not a segment: each one claims the next segment free, parses it, and goes on with the next, until
# none is left; the worker that scanned the file does the same. So a segment is run by a worker that is free
# to run it. A message naming a segment could sit prefetched by a busy worker (Dramatiq fetches twice its
# threads) while another worker idles. The worker that stores the last segment plans the request.


def _segments_start(request_id: uuid.UUID, token: int, header_end: int, segments: list[Segment]) -> None:
    now = timezone.now()
    with transaction.atomic():
        # The rows to come are counted now: progress (processed of total) moves as each segment is done.
        _heartbeat(request_id, token, total=segments[-1].last_number)
        BulkParseSegment.objects.bulk_create(
            BulkParseSegment(
                request_id=request_id,
                index=i,
                token=token,
                first_number=segment.first_number,
                last_number=segment.last_number,
                header_end=header_end,
                start=segment.start,
                end=segment.end,
                enqueued_at=now,
            )
            for i, segment in enumerate(segments)
        )
        # More than one: a busy worker may hold one of them prefetched, never all.
        if settings.BULK_PARSE_PARALLEL > 0:
            dispatch.segments_on_commit(request_id, token, count=settings.BULK_PARSE_PARALLEL)


def bulk_segments_parse(*, request_id: uuid.UUID, token: int) -> None:
    """Claims, parses and stores the request's next free segment (a re-run of a crashed one first deletes
    what its earlier attempt stored), then the next, until none is free; the worker that stores the last one
    plans the request. Stops after its batch of rows when another request waits for its parse, its first
    chunk or its finish (_another_request_waits), leaving the rest of its segment free and sending itself
    again behind it: that request's message may sit prefetched by this worker's process, so it waits for one
    batch (PARSE_BATCH_SIZE rows), not for a segment. A parse that restarted (its `token` is gone) or a
    request that ended makes this a no-op."""
    while True:
        request = BulkRequest.objects.filter(
            id=request_id, status=BulkStatus.PROCESSING, phase=BulkPhase.PARSING, parse_attempts=token
        ).first()
        segment = _segment_claim(request_id, token) if request is not None else None
        if request is None or segment is None:
            return
        fence = _SegmentFence(request.id, token, segment.id, segment.attempts)
        try:
            end = _parse_segment(request, segment, fence)
        except ParseLeaseLost:
            logger.info("bulk request %s: parse segment %s lease lost", request.id, segment.index)
            return
        except Exception:
            # Released: a worker parsing the other segments (or the sweeper's message) takes it at once.
            BulkParseSegment.objects.filter(id=segment.id, attempts=segment.attempts).update(heartbeat_at=None)
            raise
        if end == "failed":
            return
        if end == "last":
            request.refresh_from_db()
            _plan_and_move_on(request, token, request.total)
            return
        if end == "stopped" or _another_request_waits(request_id):
            dispatch.segments_now(request_id, token, count=1)
            return


def _another_request_waits(request_id: uuid.UUID) -> bool:
    """Another request's parse or finish, sent lately, has not begun, its first chunk (all of a small import)
    was sent lately and is still to apply, or an express Document Query (another request's first chunk's, a
    single patient's) became due lately and is not taken: its message waits for a worker, perhaps prefetched
    by this one's process behind the segment this worker is on. A message sent longer ago than a quarter of
    BULK_STALE_SECONDS counts no more: it may be lost (the sweeper sends it again, and it counts again), and a
    parse must not stop after every batch meanwhile. A parse is sent when its request is noticed or re-sent by
    the sweeper, which both set its heartbeat; a finish's send sets `finish_sent_at`, and its beginning clears
    it, so a big request's result file being written stops no parse."""
    return waiting_elsewhere(request_id).exists()


def waiting_elsewhere(request_id: uuid.UUID) -> QuerySet[Any]:
    """_another_request_waits' question as one statement: a row for each message that waits."""
    lately = timezone.now() - timedelta(seconds=settings.BULK_STALE_SECONDS / 4)
    parse = Q(phase=BulkPhase.PARSING, parse_attempts=0, heartbeat_at__gte=lately)
    finish = Q(phase=BulkPhase.FINISHING, finish_sent_at__gte=lately)
    requests = BulkRequest.objects.filter(parse | finish, status=BulkStatus.PROCESSING).exclude(id=request_id)
    first_chunks = BulkChunk.objects.filter(
        index=0,
        status=ChunkStatus.PENDING,
        enqueued_at__gte=lately,
        request__status=BulkStatus.PROCESSING,
        request__phase=BulkPhase.APPLYING,
    ).exclude(request_id=request_id)
    queries = express_queries_waiting(since=lately, besides=request_id)
    # One statement, asked after every batch: each part is an indexed lookup, and the first row found ends it.
    return _one(requests).union(_one(first_chunks), _one(queries), all=True)


def _one(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """`queryset`'s rows as a constant column, so that the rows of different tables make one union."""
    return queryset.values_list(Value(1, output_field=IntegerField()))


def _segment_claim(request_id: uuid.UUID, token: int) -> BulkParseSegment | None:
    """The request's first segment not done and free (never taken, released, or its worker's heartbeat
    stale), its lease taken by this worker (`attempts` is the fencing token); None when none is free."""
    now = timezone.now()
    free = Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=now - timedelta(seconds=settings.BULK_STALE_SECONDS))
    left = BulkParseSegment.objects.filter(free, request_id=request_id, token=token, done_at__isnull=True)
    while candidates := list(left.order_by("index")[:4]):
        for segment in candidates:
            # Only one of two workers racing for it takes it; the other tries the next.
            if left.filter(id=segment.id, attempts=segment.attempts).update(
                attempts=segment.attempts + 1, heartbeat_at=now
            ):
                segment.attempts += 1
                return segment
    return None


def _parse_segment(
    request: BulkRequest, segment: BulkParseSegment, fence: _SegmentFence
) -> typing.Literal["last", "done", "stopped", "failed"]:
    """Stores the segment's rows: "last" when it was the request's last segment to be done, "done" when others
    are left. "stopped": another request waits (_another_request_waits), so after a batch this worker left the
    rest of the segment free for any worker (_segment_stop) and stored nothing more. "failed": a file error
    failed the request."""
    numbers = (segment.first_number, segment.last_number)
    with transaction.atomic():
        fence.check()
        _delete_stored_rows(request.id, numbers=numbers)
    count = invalid = 0
    try:
        with storage.open_ranges(request.input_key, [(0, segment.header_end), (segment.start, segment.end)]) as stream:
            csv_import = CsvImport(
                stream,
                max_rows=settings.BULK_MAX_ROWS,
                max_bytes=settings.BULK_MAX_FILE_BYTES,
                first_number=segment.first_number,
                track_offsets=True,
            )
            rows = checked_rows(request, csv_import)
            beat = time.monotonic()
            while stored := _store_rows(request, fence, itertools.islice(rows, PARSE_BATCH_SIZE), count, invalid):
                count += stored.rows
                invalid += stored.invalid
                if segment.first_number + count <= segment.last_number and _another_request_waits(request.id):
                    # The stream is the header's bytes, then the segment's from `start`.
                    resume_at = segment.start + csv_import.offset - segment.header_end
                    _segment_stop(segment, fence, stored=count, invalid=invalid, resume_at=resume_at)
                    return "stopped"
                if time.monotonic() - beat > settings.BULK_STALE_SECONDS / 4:
                    # Outside the rows' transactions, whose shared hold on the request row would make two
                    # segments' heartbeats wait for each other: here it waits for one batch at most.
                    _heartbeat(request.id, segment.token)
                    beat = time.monotonic()
    except CsvFileError as exc:
        # The scan read the same immutable bytes without an error; should they differ, the file fails whole.
        _file_failed(request.id, segment.token, exc)
        return "failed"
    if count != segment.last_number - segment.first_number + 1:
        raise RuntimeError(f"parse segment {segment.id}: {count} rows stored, its scan counted otherwise")
    now = timezone.now()
    with transaction.atomic():
        fence.settle(invalid=invalid, done_at=now, heartbeat_at=now)
        # The request row's lock orders the segments' last commits: one of them sees every other one done.
        others = BulkParseSegment.objects.filter(request_id=request.id, done_at__isnull=True).exists()
        return "done" if others else "last"


def _segment_stop(
    segment: BulkParseSegment, fence: _SegmentFence, *, stored: int, invalid: int, resume_at: int
) -> None:
    """The segment's rest (its rows after the `stored` ones, its bytes from `resume_at`) left free for any
    worker: the rows stored stay theirs (a later attempt deletes and stores only the rest), and their invalid
    rows are counted as a done segment's are."""
    with transaction.atomic():
        fence.settle(invalid=invalid, first_number=segment.first_number + stored, start=resume_at, heartbeat_at=None)


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


class _Fence(typing.Protocol):
    def check(self) -> None:
        """First in a transaction that stores rows: raises ParseLeaseLost when this parser must stop."""

    def progress(self, *, rows: int, invalid: int) -> None:
        """Last in it: the rows and invalid rows this parser has stored so far."""


@dataclass(frozen=True, slots=True)
class _RequestFence:
    """The single parser of a request: its lease is the request's, whose counts it keeps."""

    request_id: uuid.UUID
    token: int

    def check(self) -> None:
        _heartbeat(self.request_id, self.token)

    def progress(self, *, rows: int, invalid: int) -> None:
        # Counts so far are the progress figure while parsing: invalid rows are final already.
        _heartbeat(self.request_id, self.token, total=rows, processed=invalid, failed=invalid)


@dataclass(frozen=True, slots=True)
class _SegmentFence:
    """A segment's parser: the request's lease held shared (parsers of other segments go on; a restarted parse
    or a cancel waits for this transaction, then this parser stops), and its segment's own lease."""

    request_id: uuid.UUID
    token: int
    segment_id: int
    attempt: int

    def held(self) -> QuerySet[BulkParseSegment]:
        """The segment's row while this parser holds its lease: not taken over, not done."""
        return BulkParseSegment.objects.filter(id=self.segment_id, attempts=self.attempt, done_at__isnull=True)

    def check(self) -> None:
        lease = BulkRequest.objects.filter(
            id=self.request_id, parse_attempts=self.token, phase=BulkPhase.PARSING, status=BulkStatus.PROCESSING
        )
        if not exists_shared(lease):
            raise ParseLeaseLost()
        if not self.held().update(heartbeat_at=timezone.now()):
            raise ParseLeaseLost()

    def settle(self, *, invalid: int, **fields: Any) -> None:
        """A segment's end or stop, in the caller's transaction: the request row first, as a single parser's
        commit, its counts taking the invalid rows this parser stored (its total is the scan's); then the
        segment's `fields` and its own `invalid`, while this parser still holds it (else ParseLeaseLost)."""
        _heartbeat(self.request_id, self.token, processed=F("processed") + invalid, failed=F("failed") + invalid)
        if not self.held().update(invalid=F("invalid") + invalid, **fields):
            raise ParseLeaseLost()

    def progress(self, *, rows: int, invalid: int) -> None:
        """The request's counts take a segment's rows when it is done (bulk_segments_parse)."""


def _store_rows(
    request: BulkRequest, fence: _Fence, batch: Iterable[RowResult], total_before: int, invalid_before: int
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
        fence.check()  # first: a parser that lost its lease writes nothing
        copy_insert(BulkRow, ROW_COLUMNS, values())
        if not count:
            return _Stored(0, 0)
        copy_insert(BulkRowError, ERROR_COLUMNS, errors)
        fence.progress(rows=total_before + count, invalid=invalid_before + invalid)
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
    """Everything an earlier parse of the request stored: its segments, chunks, rows and their errors."""
    # The segments first: a segment's parser holds its row (and the request's, shared) while it stores rows.
    BulkParseSegment.objects.filter(request_id=request_id).delete()
    BulkChunk.objects.filter(request_id=request_id).delete()
    _delete_stored_rows(request_id)


def _delete_stored_rows(request_id: uuid.UUID, *, numbers: tuple[int, int] | None = None) -> None:
    """The request's stored rows and their errors: all of them, or those numbered within `numbers`."""
    errors = BulkRowError.objects.filter(request_id=request_id)
    rows = BulkRow.objects.filter(request_id=request_id)
    if numbers is not None:
        errors = errors.filter(row_number__range=numbers)
        rows = rows.filter(number__range=numbers)
    errors.delete()
    # Raw DELETE: Django's cascade collector would load 100k rows into memory first.
    rows._raw_delete(BulkRow.objects.db)
