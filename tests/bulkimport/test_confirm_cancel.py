"""Confirm a dry run and cancel a request (SPEC §1, our additions): the happy paths, every refusal, and the
races against the pipeline (a chunk in flight, finish in flight)."""

from __future__ import annotations

import io
import threading

import orjson
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bulkimport import services
from bulkimport.models import BulkChunk, BulkRequest, BulkRow, BulkRowError, BulkStatus, RowStatus
from bulkimport.services import apply, finish
from bulkimport.services.operations import CANCELLED_REASON
from docqueries.models import DocumentQuery
from patients.models import Patient
from tests.helpers.api import client_for
from tests.helpers.bulk import (
    answer_document_queries,
    csv_bytes,
    person,
    result_rows,
    run_inline,
    sample_bytes,
    submit,
    wait_final,
)
from tests.helpers.factories import make_tenant
from tests.helpers.threads import db_thread
from tests.helpers.waiting import wait_until
from webhooks.models import WebhookEndpoint, WebhookMessage

pytestmark = pytest.mark.django_db(transaction=True)


def hooked_tenant(name: str = "Acme Health"):
    """A tenant with a webhook URL, so its bulk messages are stored (nothing listens: delivery is not tested
    here, only which messages exist, in which order)."""
    tenant = make_tenant(name)
    WebhookEndpoint.objects.create(customer=tenant.customer, url="http://127.0.0.1:9/hook", key="k" * 32)
    return tenant


def bulk_statuses(request_id) -> list[str]:
    messages = WebhookMessage.objects.filter(
        request_id=str(request_id), message_type="medical.bulk-patient-create"
    ).order_by("created_at")
    return [orjson.loads(bytes(m.body))["bulkPatientCreate"]["status"] for m in messages]


@pytest.fixture
def small_chunks(settings):
    settings.BULK_CHUNK_SIZE = 10


# --- Confirm --------------------------------------------------------------------------------------------


def test_confirm_imports_the_dry_runs_file_once(broker):
    tenant = hooked_tenant()
    api = client_for(tenant.api_key)
    dry = submit(tenant, sample_bytes(40, invalid_ratio=0.25, seed=5), dry_run=True)
    run_inline(dry.id)
    dry.refresh_from_db()
    assert dry.status == BulkStatus.COMPLETED and not Patient.objects.exists()

    response = api.post(f"/medical/v1/patient/bulk/{dry.id}/confirm")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert set(body) == {"requestId", "facilityId", "status", "params", "createdAt"}
    assert body["status"] == "processing" and body["params"] == {"dryRun": False}
    assert body["facilityId"] == str(dry.facility_id) and body["requestId"] != str(dry.id)

    real = BulkRequest.objects.get(id=body["requestId"])
    assert real.confirms_id == dry.id and real.input_key == dry.input_key
    run_inline(real.id)
    real.refresh_from_db()
    assert real.status == BulkStatus.COMPLETED
    assert (real.total, real.successful, real.failed) == (dry.total, dry.successful, dry.failed)
    assert Patient.objects.filter(customer=tenant.customer).count() == real.successful
    # The dry run's own outcome is untouched; the real one reports created patients row for row.
    assert [r["status"] for r in result_rows(real.id)] == [r["status"] for r in result_rows(dry.id)]
    assert {r["action"] for r in result_rows(real.id) if r["status"] == "successful"} == {"created"}
    assert bulk_statuses(real.id) == ["processing", "completed"]

    again = api.post(f"/medical/v1/patient/bulk/{dry.id}/confirm")
    assert again.status_code == 409
    assert again.json()["name"] == "ConflictError" and str(real.id) in again.json()["detail"]
    assert BulkRequest.objects.filter(customer=tenant.customer).count() == 2


def test_confirm_refuses_what_is_not_a_completed_dry_run(broker):
    tenant = make_tenant()
    api = client_for(tenant.api_key)
    waiting_dry = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=True)
    real = submit(tenant, csv_bytes([person("Ann")]))
    run_inline(real.id)
    failed_dry = submit(tenant, b"firstName\nAnn\n", dry_run=True)
    run_inline(failed_dry.id)
    assert BulkRequest.objects.get(id=failed_dry.id).status == BulkStatus.FAILED
    for request, words in ((waiting_dry, "waiting"), (real, "not a dry run"), (failed_dry, "failed")):
        response = api.post(f"/medical/v1/patient/bulk/{request.id}/confirm")
        assert response.status_code == 409, request
        assert words in response.json()["detail"]
    assert BulkRequest.objects.filter(confirms__isnull=False).count() == 0


def test_confirm_and_cancel_of_another_customers_request_are_404(broker):
    owner, intruder = make_tenant("Owner"), make_tenant("Intruder")
    dry = submit(owner, csv_bytes([person("Ann")]), dry_run=True)
    run_inline(dry.id)
    waiting = services.bulk_request_create(customer=owner.customer, facility_id=None, dry_run=False)
    api = client_for(intruder.api_key)
    assert api.post(f"/medical/v1/patient/bulk/{dry.id}/confirm").status_code == 404
    assert api.delete(f"/medical/v1/patient/bulk/{waiting.id}").status_code == 404
    assert api.delete("/medical/v1/patient/bulk/not-a-uuid").status_code == 404
    assert BulkRequest.objects.get(id=waiting.id).status == BulkStatus.WAITING
    assert not BulkRequest.objects.filter(confirms=dry).exists()


def test_two_racing_confirmations_make_one_import(broker):
    tenant = make_tenant()
    dry = submit(tenant, csv_bytes([person("Ann"), person("Bob")]), dry_run=True)
    run_inline(dry.id)
    dry.refresh_from_db()
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def confirm() -> None:
        barrier.wait()
        try:
            services.bulk_request_confirm(customer=tenant.customer, request=dry)
            outcomes.append("confirmed")
        except services.OperationRefused:
            outcomes.append("refused")

    threads = [db_thread(confirm) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["confirmed", "refused"]
    assert BulkRequest.objects.filter(confirms=dry).count() == 1


# --- Cancel ---------------------------------------------------------------------------------------------


def test_cancel_a_waiting_request(broker):
    tenant = hooked_tenant()
    api = client_for(tenant.api_key)
    request = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    response = api.delete(f"/medical/v1/patient/bulk/{request.id}")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "failed" and response.json()["reason"] == "Cancelled by the customer"
    assert response.json()["result"] is None
    assert bulk_statuses(request.id) == ["failed"]
    # Its upload URL is dead now.
    with pytest.raises(services.UploadRefused) as refused:
        services.bulk_upload_receive(request_id=request.id, stream=io.BytesIO(b"x"), content_length=1)
    assert refused.value.status == 409
    again = api.delete(f"/medical/v1/patient/bulk/{request.id}")
    assert again.status_code == 409 and "failed" in again.json()["detail"]


def test_cancel_mid_import_keeps_applied_rows_and_fails_the_rest(broker, small_chunks):
    tenant = hooked_tenant()
    api = client_for(tenant.api_key)
    request = submit(tenant, sample_bytes(50, invalid_ratio=0.0, seed=9))
    services.bulk_request_parse(request_id=request.id)
    chunks = list(BulkChunk.objects.filter(request_id=request.id).order_by("index").values_list("id", flat=True))
    services.bulk_chunk_apply(chunk_id=chunks[0])
    applied = set(Patient.objects.filter(customer=tenant.customer).values_list("id", flat=True))
    assert applied

    response = api.delete(f"/medical/v1/patient/bulk/{request.id}")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "failed" and body["reason"] == "Cancelled by the customer"
    assert body["result"], "the partial result is downloadable"
    for chunk_id in chunks[1:]:  # late chunk messages are no-ops
        services.bulk_chunk_apply(chunk_id=chunk_id)
    services.bulk_request_finish(request_id=request.id)

    request.refresh_from_db()
    assert request.status == BulkStatus.FAILED
    assert set(Patient.objects.filter(customer=tenant.customer).values_list("id", flat=True)) == applied
    assert DocumentQuery.objects.filter(patient_id__in=applied).count() == len(applied)
    rows = result_rows(request.id)
    successful = [r for r in rows if r["status"] == "successful"]
    assert {r["metriportId"] for r in successful} == {str(i) for i in applied}
    cancelled = [r for r in rows if r["status"] == "failed"]
    assert len(cancelled) == 50 - len(applied) and {r["reason"] for r in cancelled} == {"Cancelled"}
    assert (request.successful, request.failed) == (len(applied), 50 - len(applied))
    assert BulkRowError.objects.filter(request_id=request.id, code="cancelled").count() == len(cancelled)
    assert not BulkRow.objects.filter(request_id=request.id, status=RowStatus.PENDING).exists()
    assert bulk_statuses(request.id) == ["processing", "failed"]
    assert api.delete(f"/medical/v1/patient/bulk/{request.id}").status_code == 409


def _pause_after(monkeypatch, module, name: str):
    """Makes `module.name` stop, after doing its work, until the test releases it."""
    reached, release = threading.Event(), threading.Event()
    original = getattr(module, name)

    def paused(*args, **kwargs):
        result = original(*args, **kwargs)
        reached.set()
        assert release.wait(30), "never released"
        return result

    monkeypatch.setattr(module, name, paused)
    return reached, release


# PostgreSQL's row locks: the cancel commits while the chunk's transaction is open. SQLite has one writer at a
# time: the cancel waits for the chunk (the chunk-committed-first case below).
@pytest.mark.real_services
def test_cancel_while_a_chunk_is_applying_rolls_that_chunk_back(broker, small_chunks, monkeypatch):
    tenant = make_tenant()
    request = submit(tenant, sample_bytes(20, invalid_ratio=0.0, seed=4))
    services.bulk_request_parse(request_id=request.id)
    chunk_id = BulkChunk.objects.filter(request_id=request.id).order_by("index").values_list("id", flat=True)[0]
    reached, release = _pause_after(monkeypatch, apply, "apply_rows")
    errors: list[BaseException] = []

    def apply_chunk() -> None:
        try:
            services.bulk_chunk_apply(chunk_id=chunk_id)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    thread = db_thread(apply_chunk)
    thread.start()
    assert reached.wait(30)
    # The chunk has written its patients in its open transaction; the cancel's status change commits first,
    # then the cancel waits for the chunk's rows while the chunk rolls back.
    cancel = db_thread(services.bulk_request_cancel, request=BulkRequest.objects.get(id=request.id))
    cancel.start()
    wait_until(lambda: BulkRequest.objects.get(id=request.id).status == BulkStatus.FAILED)
    release.set()
    thread.join(30)
    cancel.join(30)
    assert not errors and not thread.is_alive() and not cancel.is_alive()
    assert not Patient.objects.filter(customer=tenant.customer).exists()
    assert not DocumentQuery.objects.exists()
    assert {r["status"] for r in result_rows(request.id)} == {"failed"}


def test_a_chunk_that_committed_first_is_reported_applied(broker, small_chunks):
    tenant = make_tenant()
    request = submit(tenant, sample_bytes(20, invalid_ratio=0.0, seed=4))
    services.bulk_request_parse(request_id=request.id)
    for chunk_id in BulkChunk.objects.filter(request_id=request.id).values_list("id", flat=True):
        services.bulk_chunk_apply(chunk_id=chunk_id)
    # Every chunk applied, finish not run yet: the cancel still wins and reports all rows applied.
    services.bulk_request_cancel(request=BulkRequest.objects.get(id=request.id))
    services.bulk_request_finish(request_id=request.id)
    request.refresh_from_db()
    assert request.status == BulkStatus.FAILED and request.successful == 20
    assert {r["status"] for r in result_rows(request.id)} == {"successful"}


def test_cancel_racing_finish_exactly_one_wins(broker, monkeypatch):
    tenant = hooked_tenant()
    request = submit(tenant, csv_bytes([person("Ann"), person("Bob")]))
    services.bulk_request_parse(request_id=request.id)
    for chunk_id in BulkChunk.objects.filter(request_id=request.id).values_list("id", flat=True):
        services.bulk_chunk_apply(chunk_id=chunk_id)
    services.bulk_request_finish(request_id=request.id)  # waits for the medical data
    answer_document_queries(request.id)  # which is there now: finishing
    reached, release = _pause_after(monkeypatch, finish, "write_result")
    thread = db_thread(services.bulk_request_finish, request_id=request.id)
    thread.start()
    assert reached.wait(30)  # finish wrote result.csv and is about to complete the request
    monkeypatch.undo()
    services.bulk_request_cancel(request=BulkRequest.objects.get(id=request.id))
    release.set()
    thread.join(30)
    request.refresh_from_db()
    assert request.status == BulkStatus.FAILED and request.reason == "Cancelled by the customer"
    assert request.result_key.endswith("result-cancelled.csv")
    assert {r["status"] for r in result_rows(request.id)} == {"successful"}
    assert bulk_statuses(request.id) == ["processing", "failed"]


def test_cancel_after_completion_is_409(broker):
    tenant = make_tenant()
    request = submit(tenant, csv_bytes([person("Ann")]))
    run_inline(request.id)
    response = client_for(tenant.api_key).delete(f"/medical/v1/patient/bulk/{request.id}")
    assert response.status_code == 409 and "completed" in response.json()["detail"]
    assert BulkRequest.objects.get(id=request.id).status == BulkStatus.COMPLETED


def test_cancel_then_the_live_pipeline_leaves_it_alone(pipeline, small_chunks):
    tenant = make_tenant()
    request = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    services.bulk_request_cancel(request=request)
    body = sample_bytes(30, invalid_ratio=0.0, seed=2)
    assert services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body)) is False
    assert wait_final(request.id).status == BulkStatus.FAILED
    assert not Patient.objects.filter(customer=tenant.customer).exists()


def test_the_sweeper_settles_a_cancel_that_crashed_between_its_two_transactions(broker, small_chunks):
    # The cancel's status change committed, its process died before settling the rows: the sweeper settles
    # them. Requests cancelled while waiting (no rows) are no candidates, however many there are.
    tenant = hooked_tenant()
    waiting = [
        services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False) for _ in range(3)
    ]
    for request in waiting:
        services.bulk_request_cancel(request=request)
    request = submit(tenant, sample_bytes(20, invalid_ratio=0.0, seed=5))
    services.bulk_request_parse(request_id=request.id)
    assert services.bulk_request_fail(request_id=request.id, reason=CANCELLED_REASON, source=BulkStatus.PROCESSING)
    assert BulkRow.objects.filter(request_id=request.id, status=RowStatus.PENDING).count() == 20

    with CaptureQueriesContext(connection) as queries:
        assert services.bulk_cancellations_settle() == 1
    # One query for the candidates, one probe for each (the crashed cancel only), then the settling.
    assert not any("bulkimport_bulkrow" in q["sql"] and "JOIN" in q["sql"].upper() for q in queries.captured_queries)
    request.refresh_from_db()
    assert request.result_key and (request.successful, request.failed) == (0, 20)
    assert set(BulkRow.objects.filter(request_id=request.id).values_list("reason", flat=True)) == {"Cancelled"}
    assert services.bulk_cancellations_settle() == 0  # settled once
    for cancelled in waiting:
        cancelled.refresh_from_db()
        assert cancelled.result_key == "" and cancelled.status == BulkStatus.FAILED
