"""Document Queries run by a real Dramatiq worker against the sandbox and against a real local gateway (the
receiver), finishing with the `medical.document-download` webhook."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from docqueries.backends.sandbox import sandbox_documents
from docqueries.models import DocumentQuery, QueryStatus
from docqueries.serializers import document_dto
from docqueries.services import document_queries_start, document_query_sweep
from tests.helpers.docqueries import PHI_MARKERS, make_patients
from tests.helpers.receiver import Receiver, Reply
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker")

DOCUMENT = {"id": "doc-1", "fileName": "ccd.xml", "contentType": "application/xml", "size": 1234, "description": "CCD"}
# The same document as the webhook carries it: @metriport/shared's DTO (`mimeType`).
DOCUMENT_DTO = {"id": "doc-1", "fileName": "ccd.xml", "description": "CCD", "mimeType": "application/xml", "size": 1234}


def _start(tenant, patients, bulk_request_id=None, *, express: bool = False) -> int:
    with transaction.atomic():
        return document_queries_start(
            customer_id=tenant.customer.id,
            patient_ids=[p.id for p in patients],
            bulk_request_id=bulk_request_id or uuid.uuid4(),
            express=express,
        )


def _all_finished() -> bool:
    return not DocumentQuery.objects.filter(status=QueryStatus.PROCESSING).exists()


@pytest.fixture
def gateway(settings, receiver: Receiver) -> Receiver:
    settings.DOCQUERY_BACKEND = "http"
    settings.DOCQUERY_GATEWAY_URL = f"{receiver.url}/gateway/query"
    settings.DOCQUERY_RETRY_BASE_SECONDS = 0.2
    return receiver


def test_sandbox_queries_complete_and_send_document_webhooks_without_phi(tenant, hook, webhook_receiver):
    patients = make_patients(tenant.customer, 3)
    assert _start(tenant, patients) == 3
    wait_until(_all_finished, message="all queries finished")
    wait_until(
        lambda: sum(len(r.json()["patients"]) for r in webhook_receiver.snapshot()) >= 3,
        message="every patient's document notice",
    )
    received = webhook_receiver.snapshot()
    by_patient = {}
    for request in received:
        payload = request.json()
        assert payload["meta"]["type"] == "medical.document-download"
        assert set(payload) == {"meta", "patients"}
        for entry in payload["patients"]:
            assert set(entry) == {"patientId", "externalId", "status", "documents"} - (
                set() if entry.get("externalId") else {"externalId"}
            )
            assert entry["patientId"] not in by_patient  # each patient in exactly one message
            by_patient[entry["patientId"]] = entry
        text = request.body.decode()
        for marker in PHI_MARKERS:
            assert marker not in text, f"PHI {marker!r} leaked into the webhook"
    for patient in patients:
        entry = by_patient[str(patient.id)]
        query = DocumentQuery.objects.get(patient=patient)
        assert entry["status"] == "completed" and entry["externalId"] == patient.external_id
        assert query.documents == sandbox_documents(str(patient.id))
        assert entry["documents"] == [document_dto(document) for document in query.documents]
        assert all("contentType" not in document and document["mimeType"] for document in entry["documents"])
        assert query.status == QueryStatus.COMPLETED and query.finished_at and query.next_attempt_at is None
    # The queries of one bulk request share messages, named by the bulk request's id.
    bulk_request_id = str(DocumentQuery.objects.get(patient=patients[0]).bulk_request_id)
    assert {json.loads(request.body)["meta"]["requestId"] for request in received} == {bulk_request_id}


def test_gateway_503_then_200_is_retried_with_backoff(tenant, hook, webhook_receiver, gateway):
    gateway.replies = [
        Reply(status=503),
        Receiver.json_reply({"status": "completed", "documents": [{**DOCUMENT, "patientName": "Zebulon"}]}),
    ]
    (patient,) = make_patients(tenant.customer, 1)
    _start(tenant, [patient])
    (webhook,) = webhook_receiver.wait_for_count(1)
    first, second = gateway.snapshot()
    query = DocumentQuery.objects.get(patient=patient)
    assert first.path == second.path == "/gateway/query"
    assert first.json()["requestId"] == second.json()["requestId"] == str(query.id)
    assert first.json()["patient"]["id"] == str(patient.id)
    assert query.status == QueryStatus.COMPLETED and query.attempts == 2
    assert query.documents == [DOCUMENT]  # metadata only: unknown fields from the gateway are dropped
    assert webhook.json()["patients"][0]["documents"] == [DOCUMENT_DTO]
    assert "Zebulon" not in webhook.body.decode()


def test_gateway_timeout_is_retried(tenant, hook, webhook_receiver, gateway, settings):
    settings.DOCQUERY_GATEWAY_TIMEOUT_SECONDS = 0.3
    gateway.replies = [Reply(delay=2), Receiver.json_reply({"documents": []})]
    (patient,) = make_patients(tenant.customer, 1)
    _start(tenant, [patient])
    webhook_receiver.wait_for_count(1)
    query = DocumentQuery.objects.get(patient=patient)
    assert query.status == QueryStatus.COMPLETED and query.attempts == 2 and query.documents == []


def test_gateway_pending_answer_is_polled_again(tenant, hook, webhook_receiver, gateway):
    gateway.replies = [
        Reply(status=202, headers={"retry-after": "0.2"}),
        Receiver.json_reply({"status": "completed", "documents": [DOCUMENT]}),
    ]
    (patient,) = make_patients(tenant.customer, 1)
    _start(tenant, [patient])
    webhook_receiver.wait_for_count(1)
    assert len(gateway.snapshot()) == 2
    assert DocumentQuery.objects.get(patient=patient).documents == [DOCUMENT]


def test_a_gateway_refusal_fails_the_query_and_says_so_in_the_webhook(tenant, hook, webhook_receiver, gateway):
    gateway.replies = [Reply(status=400)]
    (patient,) = make_patients(tenant.customer, 1)
    _start(tenant, [patient])
    (webhook,) = webhook_receiver.wait_for_count(1)
    query = DocumentQuery.objects.get(patient=patient)
    assert query.status == QueryStatus.FAILED and query.error == "gateway answered HTTP 400" and query.attempts == 1
    assert webhook.json()["patients"] == [
        {"patientId": str(patient.id), "externalId": patient.external_id, "status": "failed", "documents": []}
    ]
    assert len(gateway.snapshot()) == 1


def test_a_gateway_that_keeps_failing_fails_the_query_after_max_attempts(
    tenant, hook, webhook_receiver, gateway, settings
):
    settings.DOCQUERY_MAX_ATTEMPTS = 3
    gateway.default = lambda item: Reply(status=503)
    (patient,) = make_patients(tenant.customer, 1)
    _start(tenant, [patient])
    webhook_receiver.wait_for_count(1)
    query = DocumentQuery.objects.get(patient=patient)
    assert query.status == QueryStatus.FAILED and query.attempts == 3
    assert query.error == "gateway answered HTTP 503; gave up after 3 attempts"
    assert len(gateway.snapshot()) == 3


def test_gateway_calls_are_rate_limited_per_customer(tenant, other_tenant, gateway, settings):
    settings.DOCQUERY_RATE_LIMIT_PER_MINUTE = 2  # one call now, the next in 30 s
    gateway.default = lambda item: Receiver.json_reply({"documents": []})
    mine = make_patients(tenant.customer, 3)
    theirs = make_patients(other_tenant.customer, 1, prefix="other")
    _start(tenant, mine, express=True)  # a first chunk's: the express lane
    _start(other_tenant, theirs)
    gateway.wait_for_count(2)
    wait_until(lambda: DocumentQuery.objects.filter(status=QueryStatus.COMPLETED).count() == 2, message="two completed")

    def rest_deferred() -> bool:
        """The worker is done with the two others: put off by the limiter (not called) for ~30 s."""
        waiting = DocumentQuery.objects.filter(status=QueryStatus.PROCESSING)
        later = timezone.now() + timedelta(seconds=20)
        return waiting.count() == 2 and all(q.next_attempt_at and q.next_attempt_at > later for q in waiting)

    wait_until(rest_deferred, timeout=30, message="the other two queries deferred by the rate limit")
    calls = gateway.snapshot()
    assert len(calls) == 2
    callers = {call.json()["customerId"] for call in calls}
    assert callers == {str(tenant.customer.id), str(other_tenant.customer.id)}  # the other customer is not held back
    waiting = DocumentQuery.objects.filter(status=QueryStatus.PROCESSING)
    assert waiting.count() == 2
    assert all(q.next_attempt_at > timezone.now() + timedelta(seconds=20) and q.attempts == 0 for q in waiting)
    # They try again through the ordinary lane: no longer express queries waiting for a worker (a parse segment
    # would stop for those, bulkimport.services.parse).
    assert [q.express for q in waiting] == [False, False]


def test_the_sweeper_resumes_a_query_whose_message_was_lost(tenant, hook, webhook_receiver):
    (patient,) = make_patients(tenant.customer, 1)
    lost = DocumentQuery.objects.create(
        customer=tenant.customer,
        patient=patient,
        started_at=timezone.now() - timedelta(minutes=5),
        next_attempt_at=timezone.now() - timedelta(minutes=1),
    )
    (recent_patient,) = make_patients(tenant.customer, 1, prefix="recent")
    recent = DocumentQuery.objects.create(
        customer=tenant.customer, patient=recent_patient, next_attempt_at=timezone.now() - timedelta(seconds=5)
    )
    document_query_sweep()
    webhook_receiver.wait_for_count(1)
    lost.refresh_from_db()
    recent.refresh_from_db()
    assert lost.status == QueryStatus.COMPLETED
    assert recent.status == QueryStatus.PROCESSING  # within the grace period: left to the fast path
