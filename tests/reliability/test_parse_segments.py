"""A large file parsed in segments by several workers (services.parse, issue 24): it stores exactly what one
parser stores; a file error still stores nothing; a segment's crash, two workers on one parse, two segments
ending together, a parse restarted under them and a cancel each leave every row stored once or settled; the
sweeper sends workers to a parse whose workers went away, and only then, and parses again a request whose
segments were all stored but never planned."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bulkimport import services
from bulkimport.models import (
    BulkChunk,
    BulkParseSegment,
    BulkPhase,
    BulkRequest,
    BulkRow,
    BulkRowError,
    BulkStatus,
    RowStatus,
)
from bulkimport.services import dispatch, finish, parse
from docqueries.models import DocumentQuery
from docqueries.services import document_queries_start
from patients.models import Patient
from tests.helpers.bulk import result_rows, run_parse_segments, sample_bytes, submit, wait_final
from tests.helpers.factories import make_tenant
from tests.helpers.reliability import failing_on_call, without_ids
from tests.helpers.threads import db_thread

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 300
BODY = sample_bytes(ROWS, invalid_ratio=0.2, seed=4)


@pytest.fixture
def segments(settings, monkeypatch):
    settings.BULK_PARSE_SEGMENT_ROWS = 40
    settings.BULK_PARSE_PARALLEL = 2
    monkeypatch.setattr(parse, "PARSE_BATCH_SIZE", 15)  # several batches per segment
    return settings


def stored(request_id) -> tuple[object, ...]:
    """What a parse leaves: every row with its outcome, every row error, the request's counts and header."""
    rows = BulkRow.objects.filter(request_id=request_id).order_by("number")
    errors = BulkRowError.objects.filter(request_id=request_id).order_by("row_number", "code", "field")
    request = BulkRequest.objects.get(id=request_id)
    chunks = BulkChunk.objects.filter(request_id=request_id).order_by("index")
    return (
        list(rows.values_list("number", "raw", "normalized", "status", "reason", "action", "match_key", "error_code")),
        list(errors.values_list("row_number", "code", "field", "message")),
        (request.phase, request.total, request.processed, request.failed, request.header, request.warnings),
        request.document_queries_planned,
        list(chunks.values_list("first_number", "last_number")),
    )


def parsed_in_one_piece(tenant, settings, body: bytes = BODY):
    rows_per_segment, settings.BULK_PARSE_SEGMENT_ROWS = settings.BULK_PARSE_SEGMENT_ROWS, 0
    request = submit(tenant, body)
    services.bulk_request_parse(request_id=request.id)
    assert not BulkParseSegment.objects.filter(request_id=request.id).exists()
    settings.BULK_PARSE_SEGMENT_ROWS = rows_per_segment
    # Its chunk messages never run here: sent long ago, they wait for no worker (a waiting first chunk would
    # stop the other request's segments after each batch).
    long_ago = timezone.now() - timedelta(hours=1)
    BulkChunk.objects.filter(request_id=request.id).update(enqueued_at=long_ago)
    return request


def scan_only(monkeypatch, request_id) -> None:
    """The parse message, with the worker that scanned the file parsing none of its segments itself."""
    with monkeypatch.context() as patched:
        patched.setattr(parse, "bulk_segments_parse", lambda **kwargs: None)
        services.bulk_request_parse(request_id=request_id)


def scanned_beside_one_piece(settings, monkeypatch) -> tuple[BulkRequest, BulkRequest]:
    """A tenant's request of BODY parsed in one piece (the reference), and another of the same file scanned
    into segments, none of them parsed yet."""
    tenant = make_tenant()
    reference = parsed_in_one_piece(tenant, settings)
    request = submit(tenant, BODY)
    scan_only(monkeypatch, request.id)
    return reference, request


def parse_and_apply(request_id, *, queries_taken_by_a_worker: bool = True) -> None:
    """A small request's parse, its only chunk and its finish, run here (its messages, once a worker takes
    them), and its first chunk's Document Queries taken by a worker (unless told not): it waits for them then,
    for no worker."""
    services.bulk_request_parse(request_id=request_id)
    services.bulk_chunk_apply(chunk_id=BulkChunk.objects.get(request_id=request_id, index=0).id)
    if queries_taken_by_a_worker:
        queries_taken(DocumentQuery.objects.filter(bulk_request_id=request_id))
    services.bulk_request_finish(request_id=request_id)
    assert BulkRequest.objects.get(id=request_id).phase == BulkPhase.DOCUMENTS


def queries_taken(queries) -> None:
    """A worker took these Document Queries' messages: their steps are past its lease, as its claim leaves them
    (a first chunk's are express: due and not taken, they stop other requests' segments)."""
    assert queries.exists()
    queries.update(next_attempt_at=timezone.now() + timedelta(hours=1))


def run_all(*targets) -> list[BaseException]:
    """Runs each (callable, kwargs) in a thread of its own at once; the exceptions they raised."""
    errors: list[BaseException] = []

    def run(target, kwargs):
        try:
            target(**kwargs)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [db_thread(run, target, kwargs) for target, kwargs in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize(("rows_per_segment", "count"), [(7, 43), (40, 8), (299, 2)])
def test_a_file_parsed_in_segments_stores_what_one_parser_stores(
    broker, segments, monkeypatch, rows_per_segment, count
):
    tenant = make_tenant()
    reference = parsed_in_one_piece(tenant, segments)
    segments.BULK_PARSE_SEGMENT_ROWS = rows_per_segment
    request = submit(tenant, BODY)
    scan_only(monkeypatch, request.id)
    scanned = BulkRequest.objects.get(id=request.id)
    assert (scanned.phase, scanned.total, scanned.processed) == (BulkPhase.PARSING, ROWS, 0)  # counted by the scan
    assert BulkParseSegment.objects.filter(request_id=request.id, done_at__isnull=True).count() == count
    assert not BulkRow.objects.filter(request_id=request.id).exists()
    run_parse_segments(request.id)
    assert stored(request.id) == stored(reference.id)
    assert not BulkParseSegment.objects.filter(request_id=request.id, done_at__isnull=True).exists()


def test_the_worker_that_scans_the_file_parses_its_segments_too(broker, segments):
    """Alone (its messages to other workers never run here), it parses every segment and plans."""
    tenant = make_tenant()
    reference = parsed_in_one_piece(tenant, segments)
    request = submit(tenant, BODY)
    services.bulk_request_parse(request_id=request.id)
    assert BulkParseSegment.objects.filter(request_id=request.id, done_at__isnull=False).count() == 8
    assert stored(request.id) == stored(reference.id)


def test_a_small_file_is_parsed_in_one_piece_without_a_scan(broker, segments, monkeypatch):
    def no_scan(*args, **kwargs):
        raise AssertionError("a file of one segment at most is not scanned")

    monkeypatch.setattr(parse.CsvImport, "segments", no_scan)
    request = submit(make_tenant(), sample_bytes(10, seed=3))
    services.bulk_request_parse(request_id=request.id)
    assert BulkRequest.objects.get(id=request.id).phase == BulkPhase.APPLYING
    assert BulkRow.objects.filter(request_id=request.id).count() == 10


def test_a_file_error_after_many_segments_fails_the_request_before_any_row_is_stored(broker, segments):
    request = submit(make_tenant(), BODY + b'Ann,"Doe,1980-01-01\n')  # a quote never closed, on line 302
    services.bulk_request_parse(request_id=request.id)
    failed = BulkRequest.objects.get(id=request.id)
    assert failed.status == BulkStatus.FAILED
    assert "malformed at the row starting on line 302" in failed.reason
    assert (failed.total, failed.processed, failed.failed) == (0, 0, 0)
    assert not BulkRow.objects.filter(request_id=request.id).exists()
    assert not BulkParseSegment.objects.filter(request_id=request.id).exists()


def test_a_segment_that_crashed_is_released_and_redone_with_its_rows_stored_once(broker, segments, monkeypatch):
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    original = parse._store_rows
    crash_on_second_batch = failing_on_call(original, 2, ConnectionError("database went away"))

    monkeypatch.setattr(parse, "_store_rows", crash_on_second_batch)
    with pytest.raises(ConnectionError):
        run_parse_segments(request.id)
    monkeypatch.setattr(parse, "_store_rows", original)
    first = BulkParseSegment.objects.get(request_id=request.id, index=0)
    assert (first.attempts, first.heartbeat_at, first.done_at) == (1, None, None)  # released: free at once
    assert BulkRow.objects.filter(request_id=request.id).count() == 15  # its first batch
    run_parse_segments(request.id)  # the actor's retry, or another worker's loop
    assert BulkParseSegment.objects.get(id=first.id).attempts == 2
    assert stored(request.id) == stored(reference.id)


def test_workers_on_one_parse_share_its_segments_and_plan_it_once(broker, segments, monkeypatch):
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    original_plan = parse._plan_and_move_on
    plans: list[object] = []

    def counted_plan(*args, **kwargs):
        plans.append(args)
        return original_plan(*args, **kwargs)

    monkeypatch.setattr(parse, "_plan_and_move_on", counted_plan)
    loop = (services.bulk_segments_parse, {"request_id": request.id, "token": 1})
    assert run_all(loop, loop, loop) == []
    assert len(plans) == 1
    assert set(BulkParseSegment.objects.filter(request_id=request.id).values_list("attempts", flat=True)) == {1}
    assert stored(request.id) == stored(reference.id)


def test_the_last_two_segments_ending_together_plan_the_request_once(broker, segments, monkeypatch):
    """Two workers, a segment each, reach their last commit at the same moment: the request row's lock orders
    them, and exactly the second one sees every segment done and plans."""
    segments.BULK_PARSE_SEGMENT_ROWS = 150
    request = submit(make_tenant(), BODY)
    scan_only(monkeypatch, request.id)
    assert BulkParseSegment.objects.filter(request_id=request.id).count() == 2
    together = threading.Barrier(2, timeout=60)
    original_store, original_plan = parse._store_rows, parse._plan_and_move_on
    plans: list[object] = []

    def store_then_meet(*args, **kwargs):
        stored = original_store(*args, **kwargs)
        if not stored:  # the segment's rows are all stored: its last commit comes next
            together.wait()
        return stored

    def counted_plan(*args, **kwargs):
        plans.append(args)
        return original_plan(*args, **kwargs)

    monkeypatch.setattr(parse, "_store_rows", store_then_meet)
    monkeypatch.setattr(parse, "_plan_and_move_on", counted_plan)
    loop = (services.bulk_segments_parse, {"request_id": request.id, "token": 1})
    assert run_all(loop, loop) == []
    assert len(plans) == 1
    parsed = BulkRequest.objects.get(id=request.id)
    assert (parsed.phase, parsed.total) == (BulkPhase.APPLYING, ROWS)
    assert BulkRow.objects.filter(request_id=request.id).count() == ROWS


class Paused:
    """A worker parsing a request's segments, held after its first batch until released (slow, not dead)."""

    def __init__(self, monkeypatch, request_id, token: int = 1) -> None:
        self.stored_one, self.release = threading.Event(), threading.Event()
        self.errors: list[BaseException] = []
        original = parse._store_rows

        def store(*args, **kwargs):
            stored = original(*args, **kwargs)
            if stored and threading.current_thread() is self.thread and not self.stored_one.is_set():
                self.stored_one.set()
                assert self.release.wait(60)
            return stored

        def run():
            try:
                services.bulk_segments_parse(request_id=request_id, token=token)
            except Exception as exc:  # noqa: BLE001
                self.errors.append(exc)

        monkeypatch.setattr(parse, "_store_rows", store)
        self.thread = db_thread(run)
        self.thread.start()
        assert self.stored_one.wait(60)

    def finish(self) -> None:
        self.release.set()
        self.thread.join()
        assert self.errors == []  # it stopped quietly at its next batch


def test_a_parse_restarted_under_its_segments_stops_them_and_stores_every_row_once(broker, segments, monkeypatch):
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    old = BulkParseSegment.objects.get(request_id=request.id, index=0)
    paused = Paused(monkeypatch, request.id)
    # An operator forces the sweeper: the parse starts over while the slow worker holds its next batch.
    BulkRequest.objects.filter(id=request.id).update(heartbeat_at=None)
    services.bulk_request_parse(request_id=request.id)
    assert not BulkParseSegment.objects.filter(id=old.id).exists()
    paused.finish()
    assert stored(request.id) == stored(reference.id)


def test_a_restart_waits_for_a_segments_open_batch_then_deletes_it(broker, segments, monkeypatch):
    """The restart comes while a segment's batch is between its lease check and its commit: the batch holds
    the request row shared, so the restart's lease change waits for its commit and then deletes its rows
    (without that hold, the batch would commit rows of a parse that no longer exists)."""
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    old = BulkParseSegment.objects.get(request_id=request.id, index=0)
    checked, release = threading.Event(), threading.Event()
    original_check = parse._SegmentFence.check

    def check_then_hold(self):
        original_check(self)
        if not checked.is_set():
            checked.set()
            assert release.wait(60)

    monkeypatch.setattr(parse._SegmentFence, "check", check_then_hold)
    errors: list[BaseException] = []

    def run(target, **kwargs):
        try:
            target(**kwargs)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    BulkRequest.objects.filter(id=request.id).update(heartbeat_at=None)  # the restart may take the lease
    segment = db_thread(run, services.bulk_segments_parse, request_id=request.id, token=1)
    segment.start()
    assert checked.wait(60)
    restart = db_thread(run, services.bulk_request_parse, request_id=request.id)
    restart.start()
    restart.join(timeout=1)
    assert restart.is_alive(), "the restart went ahead of an open batch of its parse's segments"
    release.set()
    segment.join()
    restart.join()
    assert errors == []
    monkeypatch.setattr(parse._SegmentFence, "check", original_check)
    if connection.vendor == "postgresql":
        # Queued on the row, the restart goes next; SQLite's busy wait is no queue: the first worker may store
        # every segment first and keep a fresh heartbeat, which a restart then leaves alone (both are right,
        # and each stores every row once).
        assert BulkRequest.objects.get(id=request.id).parse_attempts == 2
        assert not BulkParseSegment.objects.filter(id=old.id).exists()
    run_parse_segments(request.id)
    assert stored(request.id) == stored(reference.id)


def test_a_cancel_during_segments_stops_them_and_settles_every_stored_row(broker, segments, monkeypatch):
    request = submit(make_tenant(), BODY)
    scan_only(monkeypatch, request.id)
    paused = Paused(monkeypatch, request.id)
    services.bulk_request_cancel(request=BulkRequest.objects.get(id=request.id))
    paused.finish()
    run_parse_segments(request.id)  # the other workers' messages find the request ended
    cancelled = BulkRequest.objects.get(id=request.id)
    assert (cancelled.status, cancelled.reason) == (BulkStatus.FAILED, "Cancelled by the customer")
    rows = BulkRow.objects.filter(request_id=request.id)
    assert rows.count() == 15  # the one batch stored before the cancel, nothing after it
    assert not rows.filter(status=RowStatus.PENDING).exists()
    assert len(result_rows(request.id)) == 15


def test_a_worker_sees_another_request_waiting_and_sends_itself_behind_it_after_a_batch(broker, segments, monkeypatch):
    """The waiting request's parse message may sit prefetched by this worker's process: the worker stops after
    the batch it is on, not at the end of its segment, and leaves the segment's rest free. Every row is stored
    once, as one parser stores them."""
    sent: list[tuple[object, ...]] = []
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    waiting = submit(make_tenant("Small"), sample_bytes(5, seed=2))  # its parse message is queued, not run
    monkeypatch.setattr(dispatch, "segments_now", lambda *args, **kwargs: sent.append((*args, kwargs)))
    run_parse_segments(request.id)
    assert sent == [(request.id, 1, {"count": 1})]
    first = BulkParseSegment.objects.get(request_id=request.id, index=0)
    # The first batch of 15 rows stored; the segment's rest, rows 16 to 40, free for any worker.
    assert (first.first_number, first.last_number, first.done_at, first.heartbeat_at) == (16, 40, None, None)
    assert BulkRow.objects.filter(request_id=request.id).count() == 15
    invalid = BulkRow.objects.filter(request_id=request.id, status=RowStatus.FAILED).count()
    assert invalid > 0  # BODY is 20% invalid: the stop counts them
    counted = BulkRequest.objects.get(id=request.id)
    assert (counted.processed, counted.failed, first.invalid) == (invalid, invalid, invalid)
    # The rest's bytes start where row 16's line does (the sample has one line per row).
    assert BODY[first.start :].startswith(BODY.splitlines(keepends=True)[16])
    parse_and_apply(waiting.id)
    run_parse_segments(request.id)  # its message, once the waiting request's parse has begun
    assert BulkRequest.objects.get(id=request.id).phase == BulkPhase.APPLYING
    assert stored(request.id) == stored(reference.id)
    assert (
        BulkParseSegment.objects.get(id=first.id).invalid
        == BulkRowError.objects.filter(request_id=request.id, row_number__range=(1, 40))
        .values("row_number")
        .distinct()
        .count()
    )


def test_a_worker_on_a_segment_stops_after_a_batch_for_another_requests_first_chunk(broker, segments, monkeypatch):
    """A small import parsed and waiting for its only chunk (its message may sit prefetched behind this
    worker's segment): the worker stops after its batch; once that chunk is applied, segments run to their
    end again."""
    sent: list[tuple[object, ...]] = []
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    small = submit(make_tenant("Small"), sample_bytes(5, seed=2))
    services.bulk_request_parse(request_id=small.id)  # parsed; its chunk message is queued, not run
    assert BulkRequest.objects.get(id=small.id).phase == BulkPhase.APPLYING
    monkeypatch.setattr(dispatch, "segments_now", lambda *args, **kwargs: sent.append((*args, kwargs)))
    run_parse_segments(request.id)
    assert sent == [(request.id, 1, {"count": 1})]
    assert BulkRow.objects.filter(request_id=request.id).count() == 15
    services.bulk_chunk_apply(chunk_id=BulkChunk.objects.get(request_id=small.id, index=0).id)
    assert BulkChunk.objects.get(request_id=small.id, index=0).status == "done"
    queries_taken(DocumentQuery.objects.filter(bulk_request_id=small.id))
    services.bulk_request_finish(request_id=small.id)  # then waits for its Document Queries, for no worker
    run_parse_segments(request.id)
    assert len(sent) == 1  # nothing waits now: every segment ran to its end
    assert stored(request.id) == stored(reference.id)


def test_a_worker_on_a_segment_stops_after_a_batch_for_another_requests_finish_and_not_while_it_runs(
    broker, segments, monkeypatch
):
    """A small dry run parsed and waiting for its finish (its message may sit prefetched behind this worker's
    segment): the worker stops after its batch. A finish that has begun waits for no worker: segments run on
    while it writes its result file (a million rows' takes half a minute), and to their end after it."""
    sent: list[tuple[object, ...]] = []
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    small = submit(make_tenant("Small"), sample_bytes(5, seed=2), dry_run=True)
    services.bulk_request_parse(request_id=small.id)  # parsed; its finish message is queued, not run
    waiting = BulkRequest.objects.get(id=small.id)
    assert (waiting.phase, waiting.finish_sent_at is not None) == (BulkPhase.FINISHING, True)
    monkeypatch.setattr(dispatch, "segments_now", lambda *args, **kwargs: sent.append((*args, kwargs)))
    run_parse_segments(request.id)
    assert sent == [(request.id, 1, {"count": 1})]
    assert BulkRow.objects.filter(request_id=request.id).count() == 15
    write_result = finish.write_result

    def segments_while_writing(*args, **kwargs):
        assert BulkRequest.objects.get(id=small.id).finish_sent_at is None
        run_parse_segments(request.id)  # the other workers, while this one writes the small request's result
        return write_result(*args, **kwargs)

    monkeypatch.setattr(finish, "write_result", segments_while_writing)
    services.bulk_request_finish(request_id=small.id)
    assert BulkRequest.objects.get(id=small.id).status == BulkStatus.COMPLETED
    assert len(sent) == 1  # no stop while it ran: every segment ran to its end
    assert stored(request.id) == stored(reference.id)


def express_queries(kind: str, settings):
    """Express Document Queries whose first step is due now and not taken: another import's first chunk's
    (its request then waits for them) or a single patient's (a patient written through the API)."""
    settings.DOCQUERY_SANDBOX_DELAY_SECONDS = 0  # due at once
    if kind == "first chunk":
        small = submit(make_tenant("Small"), sample_bytes(5, seed=2))
        parse_and_apply(small.id, queries_taken_by_a_worker=False)
        queries = DocumentQuery.objects.filter(bulk_request_id=small.id)
    else:
        tenant = make_tenant("Single")
        patient = Patient.objects.create(customer=tenant.customer, first_name="A", last_name="B", dob="1980-01-01")
        assert document_queries_start(customer_id=tenant.customer.id, patient_ids=[patient.id], express=True) == 1
        queries = DocumentQuery.objects.filter(patient=patient)
    assert queries.exists() and not queries.filter(express=False).exists()
    return queries


@pytest.mark.parametrize("kind", ["first chunk", "single patient"])
def test_a_worker_on_a_segment_stops_after_a_batch_for_an_express_document_query_until_a_worker_takes_it(
    broker, segments, monkeypatch, kind
):
    """Another import's first chunk's Document Queries, or a single patient's, go to the express lane; while one
    is due and no worker has taken it (its message may sit prefetched behind this worker's segment), the
    worker stops after its batch. Once a worker has taken it, segments run to their end. The queries of the
    ordinary lane (a later chunk's) stop none: they come after chunks by design."""
    sent: list[tuple[object, ...]] = []
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    queries = express_queries(kind, segments)
    monkeypatch.setattr(dispatch, "segments_now", lambda *args, **kwargs: sent.append((*args, kwargs)))
    run_parse_segments(request.id)
    assert sent == [(request.id, 1, {"count": 1})]
    assert BulkRow.objects.filter(request_id=request.id).count() == 15
    queries.update(express=False)  # as if sent to the ordinary lane
    run_parse_segments(request.id)
    assert len(sent) == 1  # no stop for it
    queries.update(express=True)
    queries_taken(queries)
    run_parse_segments(request.id)
    assert len(sent) == 1  # nothing waits now: every segment ran to its end
    assert stored(request.id) == stored(reference.id)


@pytest.mark.parametrize("after", ["a poll", "its own request"])
def test_an_express_query_polled_or_of_the_request_being_parsed_stops_no_segment(broker, segments, monkeypatch, after):
    """A query whose first step was answered "not yet" is polled on the ordinary lane (it counts an attempt),
    and the queries of the request being parsed wait for nothing it could yield to: neither stops a segment."""
    sent: list[tuple[object, ...]] = []
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    queries = express_queries("single patient", segments)
    if after == "a poll":
        queries.update(attempts=1)  # due again: its poll
    else:
        queries.update(bulk_request_id=request.id)
    monkeypatch.setattr(dispatch, "segments_now", lambda *args, **kwargs: sent.append((*args, kwargs)))
    run_parse_segments(request.id)
    assert sent == []
    assert stored(request.id) == stored(reference.id)


@pytest.mark.parametrize("waiting_for", ["parse", "first chunk", "finish", "express query"])
def test_a_message_sent_long_ago_stops_no_segment(broker, segments, monkeypatch, waiting_for):
    """Another request's parse not begun, its first chunk still pending, its finish not begun, or an express
    Document Query not taken, a quarter of BULK_STALE_SECONDS after its message was sent or became due (the
    message lost, until the sweeper sends it again) does not make every parse in segments stop after each
    batch."""
    sent: list[tuple[object, ...]] = []
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    small = submit(make_tenant("Small"), sample_bytes(5, seed=2), dry_run=waiting_for == "finish")
    stale = timezone.now() - timedelta(seconds=segments.BULK_STALE_SECONDS / 4 + 1)
    if waiting_for == "express query":
        queries = express_queries("single patient", segments)
        queries.update(next_attempt_at=stale)  # due then
    if waiting_for in ("parse", "express query"):
        BulkRequest.objects.filter(id=small.id).update(heartbeat_at=stale)  # noticed then
    elif waiting_for == "first chunk":
        services.bulk_request_parse(request_id=small.id)
        BulkChunk.objects.filter(request_id=small.id).update(enqueued_at=stale)
    else:
        services.bulk_request_parse(request_id=small.id)
        BulkRequest.objects.filter(id=small.id, phase=BulkPhase.FINISHING).update(finish_sent_at=stale)
    monkeypatch.setattr(dispatch, "segments_now", lambda *args, **kwargs: sent.append((*args, kwargs)))
    run_parse_segments(request.id)
    assert sent == []
    assert stored(request.id) == stored(reference.id)


def test_the_sweeper_sends_a_lost_parse_again_once_a_stale_period_and_segments_stop_for_it_again(
    broker, segments, monkeypatch
):
    """The sweeper's send of a parse never begun counts as its send: segments stop for it again, and the sweeper
    sends it no more until another stale period has passed (an operator's forced resume sends it at once, and
    counts too). A parse that began and went quiet keeps its stale heartbeat, or has it cleared when forced, so
    the sent message takes over its lease."""
    sent: list[tuple[object, ...]] = []
    monkeypatch.setattr(dispatch, "parse_now", lambda request_id: sent.append(("parse", request_id)))
    monkeypatch.setattr(dispatch, "segments_now", lambda *args, **kwargs: sent.append((*args, kwargs)))
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    BulkParseSegment.objects.filter(request_id=request.id).update(enqueued_at=timezone.now())  # workers are sent
    waiting = submit(make_tenant("Small"), sample_bytes(5, seed=2))
    long_ago = timezone.now() - timedelta(seconds=segments.BULK_STALE_SECONDS + 60)
    BulkRequest.objects.filter(id=waiting.id).update(heartbeat_at=long_ago)
    sent.clear()  # the sends of the uploads above
    assert services.bulk_requests_resume() == 1
    assert sent == [("parse", waiting.id)]
    assert BulkRequest.objects.get(id=waiting.id).heartbeat_at > long_ago
    assert services.bulk_requests_resume() == 0  # sent just now
    # An operator's forced resume sends it at once, and that counts as its send too.
    BulkRequest.objects.filter(id=waiting.id).update(heartbeat_at=long_ago)
    assert services.bulk_requests_resume(force=True, request_id=waiting.id) == 1
    assert sent == [("parse", waiting.id)] * 2
    assert BulkRequest.objects.get(id=waiting.id).heartbeat_at > long_ago
    sent.clear()
    run_parse_segments(request.id)
    assert sent == [(request.id, 1, {"count": 1})]  # stopped after its first batch, for the parse sent again
    assert BulkRow.objects.filter(request_id=request.id).count() == 15
    # A parse that began, then went quiet: sent again with its heartbeat as it was, and its lease is taken.
    BulkRequest.objects.filter(id=waiting.id).update(parse_attempts=1, heartbeat_at=long_ago)
    sent.clear()
    assert services.bulk_requests_resume(request_id=waiting.id) == 1
    assert sent == [("parse", waiting.id)]
    assert BulkRequest.objects.get(id=waiting.id).heartbeat_at == long_ago
    # An operator's forced resume releases it at once.
    sent.clear()
    assert services.bulk_requests_resume(force=True, request_id=waiting.id) == 1
    assert sent == [("parse", waiting.id)]
    assert BulkRequest.objects.get(id=waiting.id).heartbeat_at is None
    parse_and_apply(waiting.id)
    assert BulkRequest.objects.get(id=waiting.id).parse_attempts == 2
    run_parse_segments(request.id)
    assert stored(request.id) == stored(reference.id)


def test_the_sweepers_send_of_a_quiet_finish_makes_segments_stop_for_it(broker, segments, monkeypatch):
    """A finish sent long ago and never begun (its message lost) is sent again by the sweeper, which counts as
    its send: segments stop for it again."""
    sent: list[tuple[object, ...]] = []
    monkeypatch.setattr(dispatch, "finish_now", lambda request_id: sent.append(("finish", request_id)))
    monkeypatch.setattr(dispatch, "segments_now", lambda *args, **kwargs: sent.append((*args, kwargs)))
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    BulkParseSegment.objects.filter(request_id=request.id).update(enqueued_at=timezone.now())  # workers are sent
    small = submit(make_tenant("Small"), sample_bytes(5, seed=2), dry_run=True)
    services.bulk_request_parse(request_id=small.id)
    long_ago = timezone.now() - timedelta(seconds=segments.BULK_STALE_SECONDS + 60)
    BulkRequest.objects.filter(id=small.id).update(heartbeat_at=long_ago, finish_sent_at=long_ago)
    sent.clear()
    assert services.bulk_requests_resume() == 1
    assert sent == [("finish", small.id)]
    assert BulkRequest.objects.get(id=small.id).finish_sent_at > long_ago
    sent.clear()
    run_parse_segments(request.id)
    assert sent == [(request.id, 1, {"count": 1})]  # stopped after its first batch, for the finish sent again
    assert BulkRow.objects.filter(request_id=request.id).count() == 15


def test_a_segment_stopped_for_another_request_then_crashed_stores_every_row_once(broker, segments, monkeypatch):
    """After a stop, the worker that takes the segment's rest crashes in its second batch; the next one deletes
    only the rest's rows and stores them again: the stopped worker's rows and counts stay as they were."""
    reference, request = scanned_beside_one_piece(segments, monkeypatch)
    waiting = submit(make_tenant("Small"), sample_bytes(5, seed=2))
    monkeypatch.setattr(dispatch, "segments_now", lambda *args, **kwargs: None)
    run_parse_segments(request.id)  # stops after its first batch
    parse_and_apply(waiting.id)
    original = parse._store_rows
    monkeypatch.setattr(parse, "_store_rows", failing_on_call(original, 2, ConnectionError("database went away")))
    with pytest.raises(ConnectionError):
        run_parse_segments(request.id)
    monkeypatch.setattr(parse, "_store_rows", original)
    assert BulkRow.objects.filter(request_id=request.id).count() == 30  # the stopped batch and the rest's first
    run_parse_segments(request.id)
    assert stored(request.id) == stored(reference.id)


def test_the_sweeper_sends_workers_only_to_a_parse_nobody_is_on(broker, segments, monkeypatch):
    sent: list[tuple[object, ...]] = []
    monkeypatch.setattr(dispatch, "segments_now", lambda *args, **kwargs: sent.append((*args, kwargs)))
    monkeypatch.setattr(dispatch, "parse_now", lambda request_id: sent.append(("parse", request_id)))
    request = submit(make_tenant(), BODY)
    scan_only(monkeypatch, request.id)
    segments_of = BulkParseSegment.objects.filter(request_id=request.id)
    long_ago = timezone.now() - timedelta(seconds=segments.BULK_STALE_SECONDS + 60)
    # Its messages went out just now: nothing to do, even with the request's own heartbeat stale.
    BulkRequest.objects.filter(id=request.id).update(heartbeat_at=long_ago)
    sent.clear()
    assert services.bulk_requests_resume() == 0
    # Long ago, and one worker died in the first segment; another is on the second right now.
    segments_of.update(enqueued_at=long_ago)
    segments_of.filter(index=0).update(attempts=1, heartbeat_at=long_ago)
    segments_of.filter(index=1).update(attempts=1, heartbeat_at=timezone.now())
    assert services.bulk_requests_resume() == 0
    # That one died too: workers are sent (not the whole parse again), and not twice.
    segments_of.filter(index=1).update(heartbeat_at=long_ago)
    assert services.bulk_requests_resume() == 1
    assert sent == [(request.id, 1, {"count": 2})]
    assert services.bulk_requests_resume() == 0
    run_parse_segments(request.id)  # the message: both stale segments are free, and so is the rest
    assert BulkRequest.objects.get(id=request.id).phase == BulkPhase.APPLYING
    assert BulkRow.objects.filter(request_id=request.id).count() == ROWS


def test_the_sweeper_parses_again_a_request_whose_segments_are_all_done_but_never_planned(
    broker, segments, monkeypatch
):
    # The worker that stored the last segment died before planning the request: no segment is left to
    # send workers to, so once the request's heartbeat is stale the parse starts again from the file.
    sent: list[tuple[object, ...]] = []
    monkeypatch.setattr(dispatch, "segments_now", lambda *args, **kwargs: sent.append((*args, kwargs)))
    monkeypatch.setattr(dispatch, "parse_now", lambda request_id: sent.append(("parse", request_id)))
    request = submit(make_tenant(), BODY)
    scan_only(monkeypatch, request.id)
    BulkParseSegment.objects.filter(request_id=request.id).update(done_at=timezone.now())
    sent.clear()
    assert services.bulk_requests_resume() == 0  # its heartbeat is fresh: the planner may still be at work
    long_ago = timezone.now() - timedelta(seconds=segments.BULK_STALE_SECONDS + 60)
    BulkRequest.objects.filter(id=request.id).update(heartbeat_at=long_ago)
    assert services.bulk_requests_resume() == 1
    assert sent == [("parse", request.id)]
    services.bulk_request_parse(request_id=request.id)
    assert BulkRequest.objects.get(id=request.id).phase == BulkPhase.APPLYING
    assert BulkRow.objects.filter(request_id=request.id).count() == ROWS


def test_an_import_parsed_in_segments_by_a_live_worker_ends_as_one_parsed_in_one_piece(pipeline, segments, settings):
    settings.BULK_CHUNK_SIZE = 50
    settings.BULK_PARSE_SEGMENT_ROWS = 0
    clean = submit(make_tenant("One piece"), BODY)
    assert wait_final(clean.id).status == BulkStatus.COMPLETED
    settings.BULK_PARSE_SEGMENT_ROWS = 40
    request = submit(make_tenant("Segments"), BODY)
    final = wait_final(request.id)
    assert final.status == BulkStatus.COMPLETED
    assert BulkParseSegment.objects.filter(request_id=request.id, done_at__isnull=False).count() == 8
    assert without_ids(result_rows(request.id)) == without_ids(result_rows(clean.id))
    reference = BulkRequest.objects.get(id=clean.id)
    assert (final.total, final.successful, final.failed) == (reference.total, reference.successful, reference.failed)


def test_with_no_other_workers_asked_the_scanning_one_parses_alone_and_the_sweeper_still_sends_one(
    broker, segments, monkeypatch
):
    segments.BULK_PARSE_PARALLEL = 0
    sent: list[tuple[object, ...]] = []
    monkeypatch.setattr(dispatch, "segments_now", lambda *args, **kwargs: sent.append((*args, kwargs)))
    request = submit(make_tenant(), BODY)
    scan_only(monkeypatch, request.id)
    assert sent == []  # nobody asked to join
    long_ago = timezone.now() - timedelta(seconds=segments.BULK_STALE_SECONDS + 60)
    BulkParseSegment.objects.filter(request_id=request.id).update(enqueued_at=long_ago)
    assert services.bulk_requests_resume() == 1
    assert sent == [(request.id, 1, {"count": 1})]
