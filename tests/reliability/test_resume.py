"""Crash and resume, duplicate delivery, concurrent imports: nothing lost, nothing duplicated, and the
result equals an uninterrupted run."""

from __future__ import annotations

import pytest

from bulkimport import services
from bulkimport.models import BulkChunk, BulkPhase, BulkRequest, BulkRow, BulkRowError, BulkStatus, ChunkStatus
from bulkimport.services import apply, parse
from docqueries.models import DocumentQuery
from patients.models import Patient, PatientFacility
from tests.helpers.bulk import result_rows, run_inline, sample_bytes, submit, wait_final
from tests.helpers.factories import make_tenant
from tests.helpers.reliability import assert_ids_derived, failing_on_call, without_ids
from tests.helpers.runtime import live_worker
from tests.helpers.threads import db_thread

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def small_chunks(settings):
    settings.BULK_CHUNK_SIZE = 50


def test_crash_mid_chunk_then_resume_equals_clean_run(broker, small_chunks, settings, monkeypatch):
    body = sample_bytes(400, invalid_ratio=0.1, seed=21)
    clean_tenant, crash_tenant = make_tenant("Clean"), make_tenant("Crash")
    clean = submit(clean_tenant, body)
    run_inline(clean.id)

    crashed = submit(crash_tenant, body)
    services.bulk_request_parse(request_id=crashed.id)
    chunk_ids = list(BulkChunk.objects.filter(request_id=crashed.id).order_by("index").values_list("id", flat=True))
    for chunk_id in chunk_ids[:3]:
        services.bulk_chunk_apply(chunk_id=chunk_id)

    # The fourth chunk dies after creating its patients, before it commits.
    def die(**kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(apply, "document_queries_start", die)
    with pytest.raises(SystemExit):
        services.bulk_chunk_apply(chunk_id=chunk_ids[3])
    monkeypatch.undo()
    assert BulkChunk.objects.get(id=chunk_ids[3]).status == ChunkStatus.PENDING
    broker.flush_all()  # the queued messages died with the worker

    # The sweeper finds the stale request and re-sends what is left; a worker finishes it.
    settings.BULK_STALE_SECONDS = 0
    # The Document Queries of the chunks applied before the crash lost their messages too: the scheduler's
    # query sweep resumes them (at once here, instead of after its grace period).
    settings.DOCQUERY_SWEEP_GRACE_SECONDS = 0
    from metriport_bulk.runtime import SchedulerThread

    # Started only now: every step above ran inline, with no worker to race them.
    with live_worker(threads=2):
        scheduler = SchedulerThread(interval=0.3)
        try:
            assert services.bulk_requests_resume() >= 1
            scheduler.start()
            final = wait_final(crashed.id)
        finally:
            scheduler.stop()
    assert final.status == BulkStatus.COMPLETED
    crash_rows, clean_rows = result_rows(crashed.id), result_rows(clean.id)
    assert without_ids(crash_rows) == without_ids(clean_rows)
    assert_ids_derived(crashed.id, crash_rows)
    assert (
        Patient.objects.filter(customer=crash_tenant.customer).count()
        == Patient.objects.filter(customer=clean_tenant.customer).count()
    )
    assert (
        DocumentQuery.objects.filter(customer=crash_tenant.customer).count()
        == DocumentQuery.objects.filter(customer=clean_tenant.customer).count()
    )
    assert (final.total, final.successful, final.failed) == (
        400,
        clean.__class__.objects.get(id=clean.id).successful,
        BulkRequest.objects.get(id=clean.id).failed,
    )


def test_every_step_delivered_twice_changes_nothing(broker, small_chunks):
    tenant = make_tenant()
    request = submit(tenant, sample_bytes(200, seed=5))
    run_inline(request.id)
    first = result_rows(request.id)
    counts = (
        Patient.objects.count(),
        PatientFacility.objects.count(),
        DocumentQuery.objects.count(),
        BulkRow.objects.count(),
    )
    run_inline(request.id)  # every message again: parse, each chunk, finish
    for chunk_id in BulkChunk.objects.filter(request_id=request.id).values_list("id", flat=True):
        BulkChunk.objects.filter(id=chunk_id).update(status=ChunkStatus.PENDING)  # even a chunk marked undone
        services.bulk_chunk_apply(chunk_id=chunk_id)
    assert (
        Patient.objects.count(),
        PatientFacility.objects.count(),
        DocumentQuery.objects.count(),
        BulkRow.objects.count(),
    ) == counts
    assert result_rows(request.id) == first


def test_parse_crash_restarts_cleanly(broker, small_chunks, settings, monkeypatch):
    tenant = make_tenant()
    request = submit(tenant, sample_bytes(300, seed=9))
    original = parse._store_rows
    crash_on_second_batch = failing_on_call(original, 2, ConnectionError("database went away"))

    monkeypatch.setattr(parse, "PARSE_BATCH_SIZE", 100)
    monkeypatch.setattr(parse, "_store_rows", crash_on_second_batch)
    with pytest.raises(ConnectionError):
        services.bulk_request_parse(request_id=request.id)
    assert BulkRow.objects.filter(request_id=request.id).count() == 100  # partial, to be redone
    monkeypatch.setattr(parse, "_store_rows", original)
    run_inline(request.id)  # the actor's retry
    assert BulkRow.objects.filter(request_id=request.id).count() == 300
    assert BulkRequest.objects.get(id=request.id).status == BulkStatus.COMPLETED


@pytest.mark.parametrize("batch_size", [100, 250, 300, 1000])
def test_rows_are_stored_in_batches_with_progress_counts_whatever_the_batch_boundaries(broker, monkeypatch, batch_size):
    """A batch's rows are validated while its COPY runs: batches ending mid-file, exactly at the end of the
    file, or past it each store every row once, with its errors and the running counts."""
    monkeypatch.setattr(parse, "PARSE_BATCH_SIZE", batch_size)
    body = sample_bytes(300, invalid_ratio=0.2, seed=4)
    request = submit(make_tenant(), body)
    services.bulk_request_parse(request_id=request.id)
    rows = BulkRow.objects.filter(request_id=request.id)
    assert sorted(rows.values_list("number", flat=True)) == list(range(1, 301))
    invalid = rows.filter(status="failed")
    assert invalid.count() > 0
    assert set(BulkRowError.objects.filter(request_id=request.id).values_list("row_number", flat=True)) == set(
        invalid.values_list("number", flat=True)
    )
    parsed = BulkRequest.objects.get(id=request.id)
    assert (parsed.phase, parsed.total, parsed.failed, parsed.processed) == (
        BulkPhase.APPLYING, 300, invalid.count(), invalid.count(),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("tail", "reason_part"),
    [
        (b'Ann,"Doe,1980-01-01\n', "malformed at the row starting on line 352"),  # a quote never closed
        ("José,Muñoz,1980-03-04,M,1 Main St,Boston,MA,02134\n".encode("latin-1"), "not valid UTF-8"),
    ],
    ids=["malformed", "latin1"],
)
def test_a_file_error_after_stored_batches_fails_the_request_and_leaves_no_row(broker, monkeypatch, tail, reason_part):
    """The error surfaces in the middle of the fourth batch's COPY, after three batches were committed: the
    open batch is rolled back, the committed ones deleted, and the request fails with the file's reason."""
    monkeypatch.setattr(parse, "PARSE_BATCH_SIZE", 100)
    body = sample_bytes(350, invalid_ratio=0.1, seed=5) + tail
    request = submit(make_tenant(), body)
    services.bulk_request_parse(request_id=request.id)
    failed = BulkRequest.objects.get(id=request.id)
    assert failed.status == BulkStatus.FAILED
    assert reason_part in failed.reason, failed.reason
    assert (failed.total, failed.processed, failed.failed, failed.successful) == (0, 0, 0, 0)
    assert not BulkRow.objects.filter(request_id=request.id).exists()
    assert not BulkRowError.objects.filter(request_id=request.id).exists()
    assert not BulkChunk.objects.filter(request_id=request.id).exists()
    assert not Patient.objects.exists()


def test_two_parsers_racing_one_request_store_rows_once(broker):
    tenant = make_tenant()
    request = submit(tenant, sample_bytes(100, seed=2))
    errors = []

    def parse():
        try:
            services.bulk_request_parse(request_id=request.id)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [db_thread(parse) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert BulkRow.objects.filter(request_id=request.id).count() == 100
    assert BulkRequest.objects.get(id=request.id).phase == BulkPhase.APPLYING


def test_concurrent_imports_of_the_same_people_create_each_once(pipeline, small_chunks):
    body = sample_bytes(300, invalid_ratio=0.0, seed=13)
    reference = make_tenant("Reference")
    # Through the live pipeline too: running it inline here would race the fixture's worker.
    assert wait_final(submit(reference, body).id).status == BulkStatus.COMPLETED
    expected = Patient.objects.filter(customer=reference.customer).count()

    tenant = make_tenant("Racing")
    first, second = submit(tenant, body), submit(tenant, body)
    assert wait_final(first.id).status == wait_final(second.id).status == BulkStatus.COMPLETED
    assert Patient.objects.filter(customer=tenant.customer).count() == expected
    actions = [row["action"] for row in result_rows(first.id) + result_rows(second.id)]
    assert actions.count("created") == expected


def test_completed_request_ignores_late_messages(broker):
    tenant = make_tenant()
    request = submit(tenant, sample_bytes(20, seed=1))
    run_inline(request.id)
    before = BulkRequest.objects.get(id=request.id)
    services.bulk_request_parse(request_id=request.id)
    services.bulk_request_finish(request_id=request.id)
    assert services.bulk_request_fail(request_id=request.id, reason="late") is False
    after = BulkRequest.objects.get(id=request.id)
    assert (after.status, after.finished_at, after.result_key) == (before.status, before.finished_at, before.result_key)


def test_one_connection_applies_then_reprocesses(broker, small_chunks):
    """Applying rows, then re-validating them (reprocess: update_by_id over the rows' result columns), on one
    database connection both work."""
    tenant = make_tenant()
    request = submit(tenant, sample_bytes(120, invalid_ratio=0.2, seed=8))
    run_inline(request.id)
    from bulkimport.services import bulk_request_reprocess

    outcome = bulk_request_reprocess(request_id=request.id, failed_only=True)
    assert outcome.startswith("re-validated")
    assert BulkRequest.objects.get(id=request.id).status == BulkStatus.COMPLETED
