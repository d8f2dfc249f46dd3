"""Faults with real processes: a worker SIGKILLed mid-run, the broker killed and restarted (messages lost),
database connections dropped mid-chunk. Each run ends with no row lost, no duplicate patient or Document
Query, and the same result CSV as a clean run (patient ids aside, which are derived from request and row)."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from bulkimport.models import BulkRequest, BulkStatus
from tests.helpers.bulk import submit, wait_final
from tests.helpers.factories import make_tenant
from tests.helpers.processes import RedisServer, start_scheduler, start_worker
from tests.helpers.reliability import CHUNK, applying_with_progress, assert_same_as_clean
from tests.helpers.waiting import wait_until

# Worker and scheduler processes share the test process's broker (Redis), a private redis-server is killed,
# PostgreSQL backends are terminated: none of it exists on the embedded default's in-process broker.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_services]


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
