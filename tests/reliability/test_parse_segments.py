"""A large file parsed in segments by several workers (services.parse, issue 24): it stores exactly what one
parser stores; a file error still stores nothing; a segment's crash, a duplicate message, two segments ending
together, a parse restarted under them and a cancel each leave every row stored once or settled; the sweeper
re-sends a segment whose worker went away, and only that one."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

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
from bulkimport.services import dispatch, parse
from tests.helpers.bulk import result_rows, run_parse_segments, sample_bytes, submit, wait_final
from tests.helpers.factories import make_tenant
from tests.helpers.reliability import without_ids
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
    return (
        list(rows.values_list("number", "raw", "normalized", "status", "reason", "action", "match_key", "error_code")),
        list(errors.values_list("row_number", "code", "field", "message")),
        (request.phase, request.total, request.processed, request.failed, request.header, request.warnings),
        request.document_queries_planned,
        list(
            BulkChunk.objects.filter(request_id=request_id).order_by("index").values_list("first_number", "last_number")
        ),
    )


def parsed_in_one_piece(tenant, settings, body: bytes = BODY):
    settings.BULK_PARSE_SEGMENT_ROWS = 0
    request = submit(tenant, body)
    services.bulk_request_parse(request_id=request.id)
    assert not BulkParseSegment.objects.filter(request_id=request.id).exists()
    settings.BULK_PARSE_SEGMENT_ROWS = 40
    return request


@pytest.mark.parametrize(("rows_per_segment", "count"), [(7, 43), (40, 8), (299, 2)])
def test_a_file_parsed_in_segments_stores_what_one_parser_stores(broker, segments, rows_per_segment, count):
    tenant = make_tenant()
    reference = parsed_in_one_piece(tenant, segments)
    segments.BULK_PARSE_SEGMENT_ROWS = rows_per_segment
    request = submit(tenant, BODY)
    services.bulk_request_parse(request_id=request.id)
    started = BulkRequest.objects.get(id=request.id)
    assert (started.phase, started.total, started.processed) == (BulkPhase.PARSING, ROWS, 0)  # counted by the scan
    created = BulkParseSegment.objects.filter(request_id=request.id)
    assert created.count() == count
    assert created.filter(enqueued_at__isnull=False).count() == 2  # BULK_PARSE_PARALLEL sent, the rest chained
    run_parse_segments(request.id)
    assert stored(request.id) == stored(reference.id)
    assert not created.filter(done_at__isnull=True).exists()


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


def test_a_segment_that_crashed_is_redone_and_its_rows_stored_once(broker, segments, monkeypatch):
    tenant = make_tenant()
    reference = parsed_in_one_piece(tenant, segments)
    request = submit(tenant, BODY)
    services.bulk_request_parse(request_id=request.id)
    second = BulkParseSegment.objects.get(request_id=request.id, index=1)
    calls = {"n": 0}
    original = parse._store_rows

    def crash_on_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("database went away")
        return original(*args, **kwargs)

    monkeypatch.setattr(parse, "_store_rows", crash_on_second_batch)
    with pytest.raises(ConnectionError):
        services.bulk_segment_parse(segment_id=second.id)
    monkeypatch.setattr(parse, "_store_rows", original)
    numbers = (second.first_number, second.last_number)
    assert BulkRow.objects.filter(request_id=request.id, number__range=numbers).count() == 15  # one batch
    assert BulkParseSegment.objects.get(id=second.id).heartbeat_at is None  # released: the retry takes it at once
    services.bulk_segment_parse(segment_id=second.id)  # the actor's retry
    run_parse_segments(request.id)
    assert stored(request.id) == stored(reference.id)


def test_two_workers_given_one_segment_store_its_rows_once(broker, segments):
    request = submit(make_tenant(), BODY)
    services.bulk_request_parse(request_id=request.id)
    first = BulkParseSegment.objects.get(request_id=request.id, index=0)
    errors: list[BaseException] = []

    def parse_first():
        try:
            services.bulk_segment_parse(segment_id=first.id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [db_thread(parse_first) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert BulkRow.objects.filter(request_id=request.id).count() == 40
    assert BulkParseSegment.objects.get(id=first.id).done_at is not None


def test_the_last_two_segments_ending_together_plan_the_request_once(broker, segments, monkeypatch):
    """Both reach their last commit at the same moment: the request row's lock orders them, and exactly the
    second one sees every segment done and plans."""
    segments.BULK_PARSE_SEGMENT_ROWS = 150
    request = submit(make_tenant(), BODY)
    services.bulk_request_parse(request_id=request.id)
    ids = list(BulkParseSegment.objects.filter(request_id=request.id).order_by("index").values_list("id", flat=True))
    assert len(ids) == 2
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
    errors: list[BaseException] = []

    def run(segment_id):
        try:
            services.bulk_segment_parse(segment_id=segment_id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [db_thread(run, segment_id) for segment_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(plans) == 1
    parsed = BulkRequest.objects.get(id=request.id)
    assert (parsed.phase, parsed.total) == (BulkPhase.APPLYING, ROWS)
    assert BulkRow.objects.filter(request_id=request.id).count() == ROWS


class Paused:
    """Holds a segment's parser after its first batch until released (the worker is slow, not dead)."""

    def __init__(self, monkeypatch) -> None:
        self.stored_one = threading.Event()
        self.release = threading.Event()
        self.errors: list[BaseException] = []
        original = parse._store_rows

        def store(*args, **kwargs):
            stored = original(*args, **kwargs)
            if stored and not self.stored_one.is_set():
                self.stored_one.set()
                assert self.release.wait(60)
            return stored

        monkeypatch.setattr(parse, "_store_rows", store)

    def start(self, segment_id: int) -> threading.Thread:
        def run():
            try:
                services.bulk_segment_parse(segment_id=segment_id)
            except Exception as exc:  # noqa: BLE001
                self.errors.append(exc)

        thread = db_thread(run)
        thread.start()
        assert self.stored_one.wait(60)
        return thread


def test_a_parse_restarted_under_its_segments_stops_them_and_stores_every_row_once(broker, segments, monkeypatch):
    tenant = make_tenant()
    reference = parsed_in_one_piece(tenant, segments)
    request = submit(tenant, BODY)
    services.bulk_request_parse(request_id=request.id)
    old = BulkParseSegment.objects.get(request_id=request.id, index=0)
    paused = Paused(monkeypatch)
    thread = paused.start(old.id)
    # The sweeper (forced by an operator) restarts the parse while the slow segment holds its next batch.
    BulkRequest.objects.filter(id=request.id).update(heartbeat_at=None)
    services.bulk_request_parse(request_id=request.id)
    assert not BulkParseSegment.objects.filter(id=old.id).exists()
    paused.release.set()
    thread.join()
    assert paused.errors == []  # it stopped quietly at its next batch
    run_parse_segments(request.id)
    assert stored(request.id) == stored(reference.id)


def test_a_cancel_during_segments_stops_them_and_settles_every_stored_row(broker, segments, monkeypatch):
    request = submit(make_tenant(), BODY)
    services.bulk_request_parse(request_id=request.id)
    first, second = BulkParseSegment.objects.filter(request_id=request.id).order_by("index")[:2]
    services.bulk_segment_parse(segment_id=second.id)
    paused = Paused(monkeypatch)
    thread = paused.start(first.id)
    services.bulk_request_cancel(request=BulkRequest.objects.get(id=request.id))
    paused.release.set()
    thread.join()
    assert paused.errors == []
    run_parse_segments(request.id)  # the chained segments' messages find the request ended
    cancelled = BulkRequest.objects.get(id=request.id)
    assert (cancelled.status, cancelled.reason) == (BulkStatus.FAILED, "Cancelled by the customer")
    rows = BulkRow.objects.filter(request_id=request.id)
    assert rows.count() == 40 + 15  # the second segment's rows and the first's one batch: nothing after the cancel
    assert not rows.filter(status=RowStatus.PENDING).exists()
    assert len(result_rows(request.id)) == rows.count()


def test_the_sweeper_resends_only_the_segment_whose_worker_went_away(broker, segments, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    sent: list[object] = []
    monkeypatch.setattr(dispatch, "segments_now", lambda ids: sent.extend(["segment", *ids]))
    monkeypatch.setattr(dispatch, "parse_now", lambda request_id: sent.append("parse"))
    request = submit(make_tenant(), BODY)
    services.bulk_request_parse(request_id=request.id)
    first, second = BulkParseSegment.objects.filter(request_id=request.id).order_by("index")[:2]
    long_ago = timezone.now() - timedelta(seconds=segments.BULK_STALE_SECONDS + 60)
    # The first one's worker died mid-segment long ago; the second is queued behind other work; the request
    # itself has not been touched since (segments heartbeat it every quarter of the stale period).
    BulkParseSegment.objects.filter(id=first.id).update(attempts=1, heartbeat_at=long_ago, enqueued_at=long_ago)
    BulkRequest.objects.filter(id=request.id).update(heartbeat_at=long_ago)
    sent.clear()  # the upload's parse message
    assert services.bulk_requests_resume() == 1
    assert sent == ["segment", first.id]
    assert services.bulk_requests_resume() == 0  # just re-sent: not again before it is stale once more
    services.bulk_segment_parse(segment_id=first.id)  # its lease is stale: the re-sent message takes it
    run_parse_segments(request.id)
    assert BulkRequest.objects.get(id=request.id).phase == BulkPhase.APPLYING
    assert BulkRow.objects.filter(request_id=request.id).count() == ROWS
    assert second.id not in sent


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


def test_a_restart_waits_for_a_segments_open_batch_then_deletes_it(broker, segments, monkeypatch):
    """The restart comes while a segment's batch is between its lease check and its commit: the batch holds
    the request row shared, so the restart's lease change waits for its commit and then deletes its rows
    (without that hold, the batch would commit rows of a parse that no longer exists)."""
    tenant = make_tenant()
    reference = parsed_in_one_piece(tenant, segments)
    request = submit(tenant, BODY)
    services.bulk_request_parse(request_id=request.id)
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
    segment = db_thread(run, services.bulk_segment_parse, segment_id=old.id)
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
        # Queued on the row, the restart goes next; SQLite's busy wait is no queue: the segment may store all
        # of its batches first and end with a fresh heartbeat, which a restart then leaves alone (both are
        # right, and each stores every row once).
        assert BulkRequest.objects.get(id=request.id).parse_attempts == old.token + 1
        assert not BulkParseSegment.objects.filter(id=old.id).exists()
    run_parse_segments(request.id)
    assert stored(request.id) == stored(reference.id)
