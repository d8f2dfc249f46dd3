"""PHI: demographics only for staff with `patients.view_phi`; SSNs masked in lists for everyone."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from bulkimport.models import BulkRow, RowStatus
from docqueries.models import DocumentQuery
from patients.models import Patient, PatientFacility
from webhooks.models import WebhookEndpoint, WebhookMessage
from webhooks.services import webhook_message_create

HIDDEN = "hidden (no PHI permission)"


@pytest.fixture
def patient(tenant) -> Patient:
    patient = Patient.objects.create(
        customer=tenant.customer,
        external_id="MRN-0042",
        first_name="Zelda",
        last_name="Quartermaine",
        dob=datetime.date(1961, 7, 14),
        gender_at_birth="F",
        ssn="912345678",
        addresses=[{"addressLine1": "77 Sunset Strip", "city": "Springfield", "state": "IL", "zip": "62701"}],
        contacts=[{"phone": "2175550142", "email": "zelda@example.com"}],
        match_key="zelda|quartermaine|1961-07-14|f",
        zips=["62701"],
    )
    PatientFacility.objects.create(patient=patient, facility=tenant.facility)
    return patient


DEMOGRAPHICS = ("Zelda", "Quartermaine", "1961", "77 Sunset Strip", "2175550142", "zelda@example.com", "912345678")


def test_patient_list_hides_demographics_without_the_permission(patient, no_phi_client):
    html = no_phi_client.get(reverse("admin:patients_patient_changelist")).content.decode()
    assert str(patient.id) in html and "MRN-0042" in html
    assert HIDDEN in html
    for value in (*DEMOGRAPHICS, "5678"):
        assert value not in html


def test_patient_detail_hides_demographics_without_the_permission(patient, no_phi_client):
    response = no_phi_client.get(reverse("admin:patients_patient_change", args=[patient.id]))
    html = response.content.decode()
    assert response.status_code == 200
    assert str(patient.id) in html and "Main Clinic" in html
    assert html.count(HIDDEN) >= 8
    for value in (*DEMOGRAPHICS, "5678"):
        assert value not in html


def test_phi_viewer_sees_demographics_and_a_masked_ssn_in_the_list(patient, support_client):
    html = support_client.get(reverse("admin:patients_patient_changelist")).content.decode()
    assert "Zelda Quartermaine" in html
    assert "***-**-5678" in html
    assert "912345678" not in html and HIDDEN not in html


def test_phi_viewer_sees_the_patient_in_full(patient, support_client):
    html = support_client.get(reverse("admin:patients_patient_change", args=[patient.id])).content.decode()
    for value in DEMOGRAPHICS:
        assert value in html
    assert HIDDEN not in html


def test_patient_search_by_id_and_external_id(patient, no_phi_client):
    url = reverse("admin:patients_patient_changelist")
    assert list(no_phi_client.get(url, {"q": str(patient.id)}).context["cl"].result_list) == [patient]
    assert list(no_phi_client.get(url, {"q": "MRN-0042"}).context["cl"].result_list) == [patient]


def test_bulk_row_values_hidden_without_the_permission(completed_request, no_phi_client):
    row = BulkRow.objects.filter(request=completed_request, status=RowStatus.FAILED).order_by("number").first()
    response = no_phi_client.get(reverse("admin:bulkimport_bulkrow_change", args=[row.id]))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="row-phi-hidden"' in html and 'id="row-side-by-side"' not in html
    # The errors name columns, never values: everybody sees them.
    for _code, _field, message in response.context["row_errors"]:
        assert message.replace("'", "&#x27;") in html
    for cell in row.raw:
        if len(cell) > 3:
            assert cell not in html
    # Without the PHI permission there are no download links either.
    request_html = no_phi_client.get(
        reverse("admin:bulkimport_bulkrequest_change", args=[completed_request.id])
    ).content.decode()
    assert "bulk-download-input" not in request_html and "hidden (no PHI permission)" in request_html


def test_row_list_never_shows_values(completed_request, support_client):
    row = BulkRow.objects.get(request=completed_request, number=1)
    html = support_client.get(
        reverse("admin:bulkimport_bulkrow_changelist") + f"?request={completed_request.id}"
    ).content.decode()
    assert row.raw[1] not in html and row.raw[2] not in html  # first and last name


def test_document_list_hidden_without_the_permission(patient, no_phi_client, support_client):
    query = DocumentQuery.objects.create(
        customer=patient.customer,
        patient=patient,
        status="completed",
        documents=[{"id": "d1", "fileName": "d1-discharge-summary.pdf", "description": "Discharge summary"}],
    )
    url = reverse("admin:docqueries_documentquery_change", args=[query.id])
    hidden = no_phi_client.get(url).content.decode()
    assert "Discharge summary" not in hidden and HIDDEN in hidden
    assert "Express:" in hidden  # which lane its message took is no PHI: support without the permission reads it
    assert "Discharge summary" in support_client.get(url).content.decode()
    listing = no_phi_client.get(reverse("admin:docqueries_documentquery_changelist"), {"q": str(patient.id)})
    assert list(listing.context["cl"].result_list) == [query]


def test_webhook_payload_urls_hidden_without_the_permission(tenant, no_phi_client, support_client):
    WebhookEndpoint.objects.create(customer=tenant.customer, url="http://127.0.0.1:9/hook", key="secret-signing-key")
    message = webhook_message_create(
        customer_id=tenant.customer.id,
        message_type="medical.bulk-patient-create",
        data={
            "bulkPatientCreate": {
                "requestId": "r1",
                "status": "completed",
                "result": "https://s3.example/r.csv?X-Sig=1",
            }
        },
        request_id="r1",
    )
    url = reverse("admin:webhooks_webhookmessage_change", args=[message.id])
    hidden = no_phi_client.get(url).content.decode()
    assert "s3.example" not in hidden and HIDDEN in hidden and "r1" in hidden
    assert "https://s3.example/r.csv?X-Sig=1" in support_client.get(url).content.decode()
    # The endpoint's signing key is never displayed, to anyone.
    endpoint_url = reverse("admin:webhooks_webhookendpoint_change", args=[tenant.customer.id])
    assert "secret-signing-key" not in support_client.get(endpoint_url).content.decode()
    assert WebhookMessage.objects.count() == 1


def test_support_group_is_read_only_with_phi_and_may_redeliver_webhooks(support_group):
    codenames = set(support_group.permissions.values_list("content_type__app_label", "codename"))
    assert ("patients", "view_phi") in codenames
    for label, model in [
        ("patients", "customer"),
        ("patients", "apikey"),
        ("patients", "facility"),
        ("patients", "patient"),
        ("bulkimport", "bulkrequest"),
        ("bulkimport", "bulkrow"),
        ("bulkimport", "bulkrowerror"),
        ("webhooks", "webhookmessage"),
        ("webhooks", "deliveryattempt"),
        ("webhooks", "webhookendpoint"),
        ("docqueries", "documentquery"),
    ]:
        assert (label, f"view_{model}") in codenames
    writes = [
        (label, codename) for label, codename in codenames if codename.split("_")[0] in ("add", "change", "delete")
    ]
    assert writes == [("webhooks", "change_webhookmessage")]  # redelivery only: every message field is read-only
    assert Permission.objects.filter(codename="view_phi").count() == 1


def test_support_cannot_start_an_import_or_add_keys(support_client):
    assert support_client.get(reverse("admin:bulkimport_bulkrequest_import")).status_code == 403
    assert support_client.get(reverse("admin:patients_apikey_add")).status_code == 403
