"""PHI through admin pages: with PHI-bearing data of every model present, staff without `patients.view_phi` open
every list, change and history page of every registered admin (and the bulk request's file downloads), and no
seeded PHI string appears in any of them. A PHI viewer opening a payload is written to the PHI access log.

Failure modes covered: a stored payload (a document-download webhook's titles, file names, external ids; a result
link), a file row's cells, a patient's demographics, a Document Query's documents, a PHI viewer's logged lookups
or an endpoint's signing key rendered on a page for staff who may not see them.
"""

from __future__ import annotations

import datetime

import pytest
from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from bulkimport.models import BulkRequest
from docqueries.models import DocumentQuery, RateLimitBucket
from patients.models import Patient, PatientFacility, PhiAccessLog
from patients.phi_log import phi_access_record
from tests.helpers.bulk import csv_bytes, person, run_bulk
from webhooks import types
from webhooks.models import DeliveryAttempt, DeliverySlot, WebhookEndpoint, WebhookMessage
from webhooks.services import webhook_message_create

HIDDEN = "hidden (no PHI permission)"
PATIENT_PHI = ("Zelda", "Quartermaine", "1961", "912345678", "***-**-5678", "Sunset Strip", "2175550142",
               "zelda@example.com", "Q1234567")  # fmt: skip
FILE_PHI = ("Xanthippe", "Oyelaran", "Brightwater", "Ysolde", "1947-03-09", "1977-13-45")
DOCUMENT_PHI = ("Discharge summary of the left knee", "zq-knee-discharge.pdf", "Oncology consult")
PAYLOAD_PHI = ("MRN-ZQ-0042", "s3.example", "X-Signature")
SECRETS = ("secret-signing-key",)
SEEDED = (*PATIENT_PHI, *FILE_PHI, *DOCUMENT_PHI, *PAYLOAD_PHI, *SECRETS)
# Patient.external_id is declared not PHI (the customer's handle for the patient, what support is given on the
# phone): the patient pages show it to all staff. Everywhere else (a webhook payload) it stays hidden.
ALLOWED_ON = {"/admin/patients/patient/": {"MRN-ZQ-0042"}}


@pytest.fixture
def world(tenant, support_user, rf):
    """PHI in every model that can hold it, seeded through the services where they exist."""
    WebhookEndpoint.objects.create(customer=tenant.customer, url="http://127.0.0.1:9/hook", key="secret-signing-key")
    patient = Patient.objects.create(
        customer=tenant.customer,
        external_id="MRN-ZQ-0042",
        first_name="Zelda",
        last_name="Quartermaine",
        dob=datetime.date(1961, 7, 14),
        gender_at_birth="F",
        ssn="912345678",
        drivers_license={"value": "Q1234567", "state": "IL"},
        addresses=[{"addressLine1": "77 Sunset Strip", "city": "Springfield", "state": "IL", "zip": "62701"}],
        contacts=[{"phone": "2175550142", "email": "zelda@example.com"}],
        match_key="zelda|quartermaine|1961-07-14|f",
        zips=["62701"],
    )
    PatientFacility.objects.create(patient=patient, facility=tenant.facility)
    # A file: valid rows (patients, rows, chunks) and an invalid one (its cells, its errors), with a status webhook.
    bulk = run_bulk(
        tenant,
        csv_bytes(
            [
                person("Xanthippe", "Oyelaran", dob="1947-03-09"),
                person("Ysolde", "Brightwater", dob="1977-13-45"),
            ]
        ),
    )
    documents = [
        {"id": "d1", "fileName": "zq-knee-discharge.pdf", "description": "Discharge summary of the left knee"},
        {"id": "d2", "fileName": "d2.pdf", "description": "Oncology consult", "mimeType": "application/pdf"},
    ]
    query = DocumentQuery.objects.create(
        customer=tenant.customer, patient=patient, status="completed", documents=documents
    )
    download = webhook_message_create(
        customer_id=tenant.customer.id,
        message_type=types.DOCUMENT_DOWNLOAD,
        request_id=str(query.id),
        data={
            "patients": [
                {"patientId": str(patient.id), "externalId": "MRN-ZQ-0042", "status": "completed",
                 "documents": [{"id": d["id"], "fileName": d["fileName"], "description": d["description"]}
                               for d in documents]}
            ]
        },
    )  # fmt: skip
    status = webhook_message_create(
        customer_id=tenant.customer.id,
        message_type=types.BULK_PATIENT_CREATE,
        request_id=str(bulk.id),
        data={"bulkPatientCreate": {"requestId": str(bulk.id), "status": "completed",
                                    "result": "https://s3.example/r.csv?X-Signature=abc"}},
    )  # fmt: skip
    assert download is not None and status is not None
    DeliveryAttempt.objects.create(message=download, number=1, started_at=timezone.now(), error="HTTP 500")
    DeliverySlot.objects.create(customer=tenant.customer, number=0, message_id=download.id)
    RateLimitBucket.objects.create(key=f"gateway:{tenant.customer.id}", tokens=3, updated_at=timezone.now())
    request = rf.get("/admin/patients/patient/", {"ssn": "912345678", "first_name": "Zelda"})
    request.user = support_user
    phi_access_record(
        request=request, action=PhiAccessLog.Action.LIST, model="patients.patient", object_ids=[patient.pk]
    )
    return {"patient": patient, "bulk": bulk, "download": download}


def test_the_world_holds_phi_in_every_phi_model(world):
    from django.apps import apps

    from metriport_bulk.lib import phi

    for model in apps.get_models():
        if phi.phi_fields(model):
            assert model.objects.exists(), f"no {model._meta.label} seeded"
    assert BulkRequest.objects.get().failed == 1


def _pages(model_admin) -> list[str]:
    model = model_admin.model
    name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    urls = [reverse(f"{name}_changelist")]
    for pk in model._default_manager.values_list("pk", flat=True)[:20]:
        urls += [reverse(f"{name}_change", args=[pk]), reverse(f"{name}_history", args=[pk])]
        if model is BulkRequest:
            urls += [reverse("admin:bulkimport_bulkrequest_download", args=[pk, kind]) for kind in
                     ("input", "result", "invalid")]  # fmt: skip
            urls.append(reverse("admin:bulkimport_bulkrequest_row", args=[pk]) + "?number=2")
    return urls


def _text(response) -> str:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return body.decode(errors="replace")


def test_no_admin_page_shows_seeded_phi_to_staff_without_the_permission(world, no_phi_client):
    walked = 0
    found: list[tuple[str, str]] = []
    for model_admin in admin.site._registry.values():
        try:
            urls = _pages(model_admin)
        except NoReverseMatch:
            continue
        for url in urls:
            response = no_phi_client.get(url, follow=True)
            walked += 1
            text = _text(response)
            allowed = {value for prefix, values in ALLOWED_ON.items() if url.startswith(prefix) for value in values}
            found += [(url, value) for value in SEEDED if value in text and value not in allowed]
    assert found == []
    assert walked > 40  # every admin's pages, several objects each


def test_the_walk_sees_the_data(world, support_client):
    """The same pages as a PHI viewer show the seeded values: the walk above looks where they are."""
    shown = set()
    for model_admin in admin.site._registry.values():
        if model_admin.model in (WebhookMessage, Patient, DocumentQuery):
            for url in _pages(model_admin):
                text = _text(support_client.get(url))
                shown |= {value for value in SEEDED if value in text}
    assert {"Zelda", "Quartermaine", "Discharge summary of the left knee", "zq-knee-discharge.pdf"} <= shown
    assert {"MRN-ZQ-0042", "s3.example"} <= shown


def test_document_download_payload_shows_ids_and_statuses_only(world, no_phi_client):
    download = world["download"]
    html = no_phi_client.get(reverse("admin:webhooks_webhookmessage_change", args=[download.id])).content.decode()
    assert str(world["patient"].id) in html and "completed" in html and str(download.id) in html
    assert HIDDEN in html
    for value in (*DOCUMENT_PHI, "MRN-ZQ-0042"):
        assert value not in html


def test_opening_a_payload_writes_the_phi_access_log(world, support_client, support_user):
    download = world["download"]
    before = PhiAccessLog.objects.filter(model="webhooks.webhookmessage").count()
    html = support_client.get(reverse("admin:webhooks_webhookmessage_change", args=[download.id])).content.decode()
    assert "zq-knee-discharge.pdf" in html
    logged = PhiAccessLog.objects.filter(model="webhooks.webhookmessage").order_by("-id")
    assert logged.count() == before + 1
    assert logged[0].user == support_user and logged[0].object_ids == [str(download.id)]
