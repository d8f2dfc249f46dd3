"""Faults with real processes: a worker SIGKILLed mid-run, the broker killed and restarted (messages lost),
database connections dropped mid-chunk. Each run ends with no row lost, no duplicate patient or Document
Query, and the same result CSV as a clean run (patient ids aside, which are derived from request and row)."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from bulkimport.models import BulkPhase, BulkRequest, BulkStatus
from docqueries.models import DocumentQuery
from patients.models import Patient
from tests.bulkimport.helpers import sample_bytes, wait_final
from tests.factories import make_tenant
from tests.reliability.processes import RedisServer, start_scheduler, start_worker
from tests.reliability.test_resume import assert_ids_derived, result_rows, run_inline, submit, without_ids
from tests.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 3_000
CHUNK = "150"


@pytest.fixture
def clean_run(broker, settings):
    """The reference: the same file processed without any fault."""
    settings.BULK_CHUNK_SIZE = int(CHUNK)
    body = sample_bytes(ROWS, invalid_ratio=0.05, seed=77)
    tenant = make_tenant("Clean run")
    request = submit(tenant, body)
    run_inline(request.id)
    return body, tenant, request


def assert_same_as_clean(request, tenant, clean_request, clean_tenant) -> None:
    final = BulkRequest.objects.get(id=request.id)
    assert final.status == BulkStatus.COMPLETED, (final.status, final.reason)
    rows, clean_rows = result_rows(request.id), result_rows(clean_request.id)
    assert len(rows) == ROWS
    assert without_ids(rows) == without_ids(clean_rows)
    assert_ids_derived(request.id, rows)
    for model in (Patient, DocumentQuery):
        assert (
            model.objects.filter(customer=tenant.customer).count()
            == model.objects.filter(customer=clean_tenant.customer).count()
        )


def applying_with_progress(request_id) -> bool:
    request = BulkRequest.objects.get(id=request_id)
    return request.phase == BulkPhase.APPLYING and request.successful > 0


def test_worker_sigkilled_mid_run_then_restarted(clean_run, tmp_path, settings):
    body, clean_tenant, clean_request = clean_run
    env = {"BULK_CHUNK_SIZE": CHUNK, "BULK_STALE_SECONDS": "2"}
    settings.BULK_STALE_SECONDS = 2
    tenant = make_tenant("Killed worker")
    worker = start_worker(tmp_path, "first", **env)
    second = scheduler = None
    try:
        request = submit(tenant, body)
        wait_until(lambda: applying_with_progress(request.id), timeout=60, message="apply phase with progress")
        worker.kill()  # SIGKILL: in-flight chunk transactions roll back, prefetched messages are lost
        assert BulkRequest.objects.get(id=request.id).status == BulkStatus.PROCESSING
        second = start_worker(tmp_path, "second", **env)
        scheduler = start_scheduler(tmp_path, **env)  # the sweeper re-sends what the dead worker held
        wait_final(request.id, timeout=120)
    finally:
        for process in (worker, second, scheduler):
            if process:
                process.kill()
    assert_same_as_clean(request, tenant, clean_request, clean_tenant)


def test_broker_killed_and_restarted_during_a_run(clean_run, tmp_path, settings):
    body, clean_tenant, clean_request = clean_run
    redis_server = RedisServer(tmp_path).start()
    env = {"BULK_CHUNK_SIZE": CHUNK, "BULK_STALE_SECONDS": "2", "BROKER_URL": redis_server.url}
    tenant = make_tenant("Broker restart")
    worker = start_worker(tmp_path, "worker", **env)
    scheduler = start_scheduler(tmp_path, **env)
    try:
        # Submitted from here, the first message goes to the suite's broker and is never consumed: the
        # scheduler on the private broker notices the stale parse and re-sends it.
        request = submit(tenant, body)
        wait_until(lambda: applying_with_progress(request.id), timeout=90, message="apply phase with progress")
        redis_server.kill()  # every queued message is gone
        time.sleep(1)
        redis_server.start()
        wait_final(request.id, timeout=150)
    finally:
        worker.kill()
        scheduler.kill()
        redis_server.kill()
    assert_same_as_clean(request, tenant, clean_request, clean_tenant)


def test_database_connections_dropped_mid_chunk(clean_run, pipeline, settings):
    body, clean_tenant, clean_request = clean_run
    settings.BULK_STALE_SECONDS = 2
    tenant = make_tenant("Dropped connections")
    request = submit(tenant, body)
    wait_until(lambda: applying_with_progress(request.id), timeout=60, message="apply phase with progress")
    dropped = 0
    for _ in range(5):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'"
            )
            dropped += cursor.fetchone()[0]
        time.sleep(0.2)
    wait_final(request.id, timeout=120)
    assert dropped > 0  # the fault really happened
    assert_same_as_clean(request, tenant, clean_request, clean_tenant)
