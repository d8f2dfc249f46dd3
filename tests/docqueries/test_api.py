"""GET /medical/v1/document/query?patientId=: the patient's latest query, scoped by customer."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from docqueries.models import DocumentQuery, QueryStatus
from tests.conftest import client_for
from tests.docqueries.conftest import make_patients

URL = "/medical/v1/document/query"


def test_requires_an_api_key(db):
    assert client_for(None).get(URL, {"patientId": str(uuid.uuid4())}).status_code == 401


def test_patient_id_is_required(api):
    response = api.get(URL)
    assert response.status_code == 400
    assert response.json()["detail"] == "patientId: This query parameter is required."


def test_unknown_and_malformed_patient_ids_are_404(api):
    assert api.get(URL, {"patientId": str(uuid.uuid4())}).status_code == 404
    assert api.get(URL, {"patientId": "not-a-uuid"}).status_code == 404


def test_another_customers_patient_is_404_like_an_unknown_one(api, other_tenant):
    (patient,) = make_patients(other_tenant.customer, 1)
    DocumentQuery.objects.create(customer=other_tenant.customer, patient=patient)
    response = api.get(URL, {"patientId": str(patient.id)})
    assert response.status_code == 404
    assert response.json()["name"] == "NotFoundError"


def test_a_patient_without_queries_is_404(api, tenant):
    (patient,) = make_patients(tenant.customer, 1)
    response = api.get(URL, {"patientId": str(patient.id)})
    assert response.status_code == 404 and response.json()["detail"] == "This patient has no Document Query."


def test_returns_the_latest_query_with_a_document_count(api, tenant):
    (patient,) = make_patients(tenant.customer, 1)
    now = timezone.now()
    DocumentQuery.objects.create(customer=tenant.customer, patient=patient, started_at=now - timedelta(days=1))
    latest = DocumentQuery.objects.create(
        customer=tenant.customer,
        patient=patient,
        bulk_request_id=uuid.uuid4(),
        status=QueryStatus.COMPLETED,
        started_at=now,
        finished_at=now + timedelta(seconds=3),
        documents=[{"id": "a"}, {"id": "b"}],
    )
    body = api.get(URL, {"patientId": str(patient.id)}).json()
    assert body == {
        "requestId": str(latest.id),
        "status": "completed",
        "startedAt": body["startedAt"],
        "finishedAt": body["finishedAt"],
        "documents": 2,
    }
    assert body["startedAt"] < body["finishedAt"]
