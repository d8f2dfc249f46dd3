"""GET /medical/v1/document/query?patientId=: the patient's latest query, scoped by customer."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from docqueries.models import DocumentQuery, QueryStatus
from tests.helpers.api import client_for
from tests.helpers.docqueries import make_patients

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


def test_returns_the_latest_query_in_metriports_shape(api, tenant):
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
        documents=[{"id": "a", "fileName": "a.xml"}, {"id": "b", "fileName": "b.pdf"}],
    )
    body = api.get(URL, {"patientId": str(patient.id)}).json()
    assert body == {
        "requestId": str(latest.id),
        "download": {"status": "completed", "total": 2, "successful": 2, "errors": 0},
        "convert": {"status": "completed", "total": 0, "successful": 0, "errors": 0},
        "startedAt": body["startedAt"],
        "finishedAt": body["finishedAt"],
    }
    assert body["startedAt"] < body["finishedAt"]


def test_a_processing_query_has_no_counts_and_no_finish_time(api, tenant):
    (patient,) = make_patients(tenant.customer, 1)
    query = DocumentQuery.objects.create(customer=tenant.customer, patient=patient)
    body = api.get(URL, {"patientId": str(patient.id)}).json()
    assert body["requestId"] == str(query.id)
    assert body["download"] == body["convert"] == {"status": "processing"}
    assert "finishedAt" not in body


def test_post_starts_one_query_and_answers_the_processing_one_again(api, tenant):
    (patient,) = make_patients(tenant.customer, 1)
    first = api.post(f"{URL}?patientId={patient.id}", {}, format="json")
    assert first.status_code == 200, first.json()
    assert first.json()["download"] == {"status": "processing"}
    again = api.post(f"{URL}?patientId={patient.id}", {"metadata": {"source": "test"}}, format="json").json()
    assert again["requestId"] == first.json()["requestId"]
    assert DocumentQuery.objects.filter(patient=patient).count() == 1


def test_post_checks_the_patient_and_its_facility(api, tenant, other_tenant):
    (patient,) = make_patients(tenant.customer, 1)
    (foreign,) = make_patients(other_tenant.customer, 1)
    assert api.post(f"{URL}?patientId={foreign.id}", {}, format="json").status_code == 404
    assert api.post(URL, {}, format="json").status_code == 400
    response = api.post(f"{URL}?patientId={patient.id}&facilityId={uuid.uuid4()}", {}, format="json")
    assert response.status_code == 404
    assert not DocumentQuery.objects.filter(patient=patient).exists()


DOCUMENTS_URL = "/medical/v1/document"
SANDBOX_DOCUMENT = {
    "id": "d1",
    "fileName": "d1-ccd.xml",
    "contentType": "application/xml",
    "size": 4096,
    "description": "Continuity of Care Document",
}


def test_documents_of_completed_queries_as_fhir_or_dto(api, tenant):
    (patient,) = make_patients(tenant.customer, 1)
    now = timezone.now()
    for offset, documents in ((2, [SANDBOX_DOCUMENT]), (1, [SANDBOX_DOCUMENT, {"id": "d2", "fileName": "n.pdf"}])):
        DocumentQuery.objects.create(
            customer=tenant.customer,
            patient=patient,
            bulk_request_id=uuid.uuid4(),
            status=QueryStatus.COMPLETED,
            started_at=now - timedelta(hours=offset),
            finished_at=now,
            documents=documents,
        )
    DocumentQuery.objects.create(customer=tenant.customer, patient=patient, documents=[{"id": "never-shown"}])
    dto = api.get(DOCUMENTS_URL, {"patientId": str(patient.id), "output": "dto"}).json()
    assert dto == {
        "documents": [
            {
                "id": "d1",
                "fileName": "d1-ccd.xml",
                "description": "Continuity of Care Document",
                "mimeType": "application/xml",
                "size": 4096,
            },
            {"id": "d2", "fileName": "n.pdf"},
        ]
    }
    fhir = api.get(DOCUMENTS_URL, {"patientId": str(patient.id)}).json()["documents"]
    assert fhir[0] == {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "description": "Continuity of Care Document",
        "content": [{"attachment": {"title": "d1-ccd.xml", "contentType": "application/xml", "size": 4096}}],
    }
    assert [d["id"] for d in fhir] == ["d1", "d2"]


def test_documents_of_an_unknown_or_foreign_patient_are_404(api, other_tenant):
    (foreign,) = make_patients(other_tenant.customer, 1)
    assert api.get(DOCUMENTS_URL, {"patientId": str(foreign.id)}).status_code == 404
    assert api.get(DOCUMENTS_URL, {"patientId": "nope"}).status_code == 404
    assert api.get(DOCUMENTS_URL).status_code == 400
