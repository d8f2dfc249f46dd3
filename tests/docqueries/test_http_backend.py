"""The http backend's answers, run synchronously (no worker) against the real local gateway."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from docqueries.models import DocumentQuery, QueryStatus
from docqueries.services import document_queries_run, retry_delay
from tests.helpers.docqueries import make_patients
from tests.helpers.receiver import Receiver, Reply


@pytest.fixture
def gateway(settings, receiver, broker) -> Receiver:
    settings.DOCQUERY_BACKEND = "http"
    settings.DOCQUERY_GATEWAY_URL = f"{receiver.url}/gateway"
    return receiver


@pytest.fixture
def query(tenant) -> DocumentQuery:
    (patient,) = make_patients(tenant.customer, 1)
    return DocumentQuery.objects.create(
        customer=tenant.customer, patient=patient, bulk_request_id=uuid.uuid4(), next_attempt_at=timezone.now()
    )


def test_the_gateway_gets_the_request_id_and_the_patients_demographics(gateway, query):
    gateway.replies = [Receiver.json_reply({"status": "completed", "documents": []})]
    document_queries_run(query_ids=[str(query.id)])
    (call,) = gateway.snapshot()
    body = call.json()
    assert body["requestId"] == str(query.id) and body["customerId"] == str(query.customer_id)
    assert body["patient"]["id"] == str(query.patient_id) and body["patient"]["dob"] == "1961-07-23"
    assert "ssn" not in body["patient"]
    assert call.headers["user-agent"] == "metriport-bulk"
    query.refresh_from_db()
    assert query.status == QueryStatus.COMPLETED and query.attempts == 1


def test_a_processing_answer_is_polled_after_its_retry_after(gateway, query):
    gateway.replies = [Receiver.json_reply({"status": "processing", "retryAfter": 42})]
    document_queries_run(query_ids=[str(query.id)])
    query.refresh_from_db()
    assert query.status == QueryStatus.PROCESSING and query.attempts == 1
    assert timezone.now() + timedelta(seconds=40) < query.next_attempt_at < timezone.now() + timedelta(seconds=43)


def test_a_429_waits_at_least_what_the_gateway_asks(gateway, query, settings):
    settings.DOCQUERY_RETRY_BASE_SECONDS = 0.1
    gateway.replies = [Reply(status=429, headers={"retry-after": "90"})]
    document_queries_run(query_ids=[str(query.id)])
    query.refresh_from_db()
    assert query.status == QueryStatus.PROCESSING and query.error == "gateway answered HTTP 429"
    assert query.next_attempt_at > timezone.now() + timedelta(seconds=85)


def test_a_redirect_is_not_followed_and_fails_the_query(gateway, query):
    gateway.replies = [Reply(status=307, headers={"location": f"{gateway.url}/elsewhere"})]
    document_queries_run(query_ids=[str(query.id)])
    query.refresh_from_db()
    assert query.status == QueryStatus.FAILED and query.error == "gateway answered HTTP 307"
    assert [call.path for call in gateway.snapshot()] == ["/gateway"]


def test_a_query_not_due_or_already_finished_is_not_run(gateway, query):
    DocumentQuery.objects.filter(id=query.id).update(next_attempt_at=timezone.now() + timedelta(minutes=5))
    document_queries_run(query_ids=[str(query.id)])
    DocumentQuery.objects.filter(id=query.id).update(status=QueryStatus.COMPLETED, next_attempt_at=timezone.now())
    document_queries_run(query_ids=[str(query.id)])
    assert gateway.snapshot() == []


def test_a_missing_gateway_url_fails_the_query_with_a_reason(gateway, query, settings):
    settings.DOCQUERY_GATEWAY_URL = ""
    document_queries_run(query_ids=[str(query.id)])
    query.refresh_from_db()
    assert query.status == QueryStatus.FAILED and query.error == "DOCQUERY_GATEWAY_URL is not configured"


def test_a_query_past_its_deadline_fails_without_calling_the_gateway(gateway, query):
    DocumentQuery.objects.filter(id=query.id).update(started_at=timezone.now() - timedelta(hours=25))
    document_queries_run(query_ids=[str(query.id)])
    query.refresh_from_db()
    assert query.status == QueryStatus.FAILED and "24 hours" in query.error
    assert gateway.snapshot() == []


def test_retry_delays_double_and_are_capped(settings):
    import random

    settings.DOCQUERY_RETRY_BASE_SECONDS = 5
    rng = random.Random(3)
    assert 4 <= retry_delay(1, rng=rng) <= 6
    assert 32 <= retry_delay(4, rng=rng) <= 48
    assert retry_delay(30, rng=rng) <= 300 * 1.2


def test_a_rate_limited_customer_does_not_hold_back_another_customer_in_the_same_batch(
    gateway, tenant, other_tenant, settings
):
    settings.DOCQUERY_RATE_LIMIT_PER_MINUTE = 1
    gateway.default = lambda item: Receiver.json_reply({"documents": []})
    now = timezone.now()
    mine = [
        DocumentQuery.objects.create(customer=tenant.customer, patient=patient, next_attempt_at=now)
        for patient in make_patients(tenant.customer, 2)
    ]
    (theirs,) = [
        DocumentQuery.objects.create(customer=other_tenant.customer, patient=patient, next_attempt_at=now)
        for patient in make_patients(other_tenant.customer, 1, prefix="other")
    ]
    document_queries_run(query_ids=[str(mine[0].id), str(mine[1].id), str(theirs.id)])
    assert sorted(call.json()["requestId"] for call in gateway.snapshot()) == sorted([str(mine[0].id), str(theirs.id)])
    waiting = DocumentQuery.objects.get(id=mine[1].id)
    assert waiting.status == QueryStatus.PROCESSING and waiting.attempts == 0
    assert waiting.next_attempt_at > timezone.now() + timedelta(seconds=50)  # one call a minute
    assert DocumentQuery.objects.get(id=theirs.id).status == QueryStatus.COMPLETED
