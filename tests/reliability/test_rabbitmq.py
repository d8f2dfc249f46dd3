"""RabbitMQ for real (issue 16): the whole pipeline through the CI machine's RabbitMQ (RABBITMQ_URL, default
amqp://guest:guest@127.0.0.1:5672/) in real worker and scheduler processes: the upload PUT to its pre-signed
S3 URL is noticed by the scheduler, parse, chunks, Document Queries and webhooks all travel through
RabbitMQ; then the same with the worker SIGKILLed mid-run. RabbitMQ not reachable fails the test, never
skips it."""

from __future__ import annotations

import os

import pytest
import requests

from bulkimport import services
from bulkimport.models import BulkStatus
from docqueries.models import DocumentQuery, QueryStatus
from tests.helpers.bulk import sample_bytes, wait_final
from tests.helpers.factories import make_tenant
from tests.helpers.processes import start_scheduler, start_worker
from tests.helpers.reliability import CHUNK, applying_with_progress, assert_same_as_clean
from tests.helpers.waiting import wait_until
from webhooks.models import WebhookEndpoint

# RabbitMQ itself, real worker processes, SeaweedFS S3.
# One machine-wide RabbitMQ and Dramatiq's fixed queue names there: under pytest-xdist these tests run in
# one worker (`--dist loadgroup`), one after the other, so no worker consumes another's messages.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.real_services,
    pytest.mark.xdist_group("rabbitmq"),
]

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture
def rabbitmq_env(settings) -> dict[str, str]:
    import pika

    try:
        pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL)).close()
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the same finding
        raise AssertionError(f"RabbitMQ is not reachable at {RABBITMQ_URL} ({type(exc).__name__})") from exc
    assert settings.S3_BUCKET, "these tests upload through a pre-signed S3 URL (the suite's SeaweedFS)"
    return {"BROKER_URL": RABBITMQ_URL, "BULK_CHUNK_SIZE": CHUNK, "BULK_STALE_SECONDS": "2"}


def upload(tenant, body: bytes):
    """A request created and its file PUT to the pre-signed URL: no message is sent from this process, the
    scheduler (on RabbitMQ) notices the upload."""
    request = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    answer = requests.put(services.bulk_upload_url(request), data=body, timeout=30)
    assert answer.status_code == 200
    return request


def test_bulk_end_to_end_over_rabbitmq(rabbitmq_env, tmp_path, receiver):
    tenant = make_tenant("Over RabbitMQ")
    WebhookEndpoint.objects.create(customer=tenant.customer, url=f"{receiver.url}/hook", key="k" * 32)
    processes = [start_worker(tmp_path, **rabbitmq_env), start_scheduler(tmp_path, **rabbitmq_env)]
    try:
        request = upload(tenant, sample_bytes(200, invalid_ratio=0.1, seed=41))
        final = wait_final(request.id, timeout=120)
        assert final.status == BulkStatus.COMPLETED, (final.status, final.reason)
        assert final.total == 200 and final.successful + final.failed == 200 and final.successful > 0
        queries = DocumentQuery.objects.filter(bulk_request_id=request.id)
        assert queries.count() > 0 and not queries.filter(status=QueryStatus.PROCESSING).exists()

        def bulk_statuses() -> list[str]:
            return [
                r.json()["bulkPatientCreate"]["status"]
                for r in receiver.received
                if r.body and r.json()["meta"]["type"] == "medical.bulk-patient-create"
            ]

        wait_until(lambda: len(bulk_statuses()) == 2, timeout=60, message="both bulk webhooks delivered")
        assert bulk_statuses() == ["processing", "completed"]
    finally:
        for process in processes:
            process.kill()


def test_worker_sigkilled_mid_run_over_rabbitmq(clean_run, rabbitmq_env, tmp_path, settings):
    body, clean_tenant, clean_request = clean_run
    settings.BULK_STALE_SECONDS = 2
    tenant = make_tenant("Killed worker on RabbitMQ")
    worker = start_worker(tmp_path, "first", **rabbitmq_env)
    scheduler = start_scheduler(tmp_path, **rabbitmq_env)
    second = None
    try:
        request = upload(tenant, body)
        wait_until(lambda: applying_with_progress(request.id), timeout=90, message="apply phase with progress")
        worker.kill()  # unacknowledged messages go back to their RabbitMQ queue; the sweeper covers the rest
        second = start_worker(tmp_path, "second", **rabbitmq_env)
        wait_final(request.id, timeout=180)
    finally:
        for process in (worker, second, scheduler):
            if process:
                process.kill()
    assert_same_as_clean(request, tenant, clean_request, clean_tenant)
