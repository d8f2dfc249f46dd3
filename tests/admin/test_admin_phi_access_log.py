"""The PHI access log: every page showing PHI to a viewer writes one row (who, when, which ids, which page);
support reads it in the admin; nobody can add, change or delete a row through the app."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse

from bulkimport.models import BulkRow
from docqueries.models import DocumentQuery
from patients.models import Patient, PhiAccessLog
from webhooks.models import WebhookEndpoint
from webhooks.services import webhook_message_create


@pytest.fixture
def patients(tenant) -> list[Patient]:
    return [
        Patient.objects.create(
            customer=tenant.customer,
            first_name=f"Zelda{index}",
            last_name="Quartermaine",
            dob=datetime.date(1961, 7, 14),
            gender_at_birth="F",
            ssn="912345678",
            match_key=f"zelda{index}|quartermaine|1961-07-14|f",
        )
        for index in range(3)
    ]


def test_patient_page_and_list_are_logged_with_the_ids_shown(patients, support_client, support_user):
    support_client.get(reverse("admin:patients_patient_change", args=[patients[0].id]))
    support_client.get(reverse("admin:patients_patient_changelist"), {"ssn": "912345678"})
    view, listing = PhiAccessLog.objects.order_by("id")
    assert (view.user, view.username, view.action, view.model) == (support_user, "support", "view", "patients.patient")
    assert view.object_ids == [str(patients[0].id)] and view.path.endswith(f"{patients[0].id}/change/")
    assert listing.action == "list" and listing.object_count == 3
    assert sorted(listing.object_ids) == sorted(str(patient.id) for patient in patients)
    assert listing.query == "ssn=912345678"


def test_row_document_query_and_download_pages_are_logged(completed_request, patients, support_client):
    row = BulkRow.objects.filter(request=completed_request).order_by("number").first()
    support_client.get(reverse("admin:bulkimport_bulkrow_change", args=[row.id]))
    query = DocumentQuery.objects.create(customer=patients[0].customer, patient=patients[0], status="completed")
    support_client.get(reverse("admin:docqueries_documentquery_change", args=[query.id]))
    response = support_client.get(
        reverse("admin:bulkimport_bulkrequest_download", args=[completed_request.id, "input"])
    )
    assert response.status_code == 200
    logged = list(PhiAccessLog.objects.order_by("id").values_list("action", "model", "object_ids"))
    assert logged == [
        ("view", "bulkimport.bulkrow", [str(row.id)]),
        ("view", "docqueries.documentquery", [str(query.id)]),
        ("download", "bulkimport.bulkrequest:input", [str(completed_request.id)]),
    ]


def test_pages_without_phi_are_not_logged(completed_request, patients, support_client, no_phi_client):
    no_phi_client.get(reverse("admin:patients_patient_change", args=[patients[0].id]))
    no_phi_client.get(reverse("admin:patients_patient_changelist"))
    support_client.get(reverse("admin:bulkimport_bulkrow_changelist"), {"request": completed_request.id})
    support_client.get(reverse("admin:bulkimport_bulkrequest_changelist"))
    assert PhiAccessLog.objects.count() == 0


def test_support_reads_and_filters_the_log_but_nobody_writes_it(patients, support_client, operator_client, operator):
    support_client.get(reverse("admin:patients_patient_change", args=[patients[1].id]))
    operator_client.get(reverse("admin:patients_patient_change", args=[patients[2].id]))
    url = reverse("admin:patients_phiaccesslog_changelist")
    entry = PhiAccessLog.objects.get(object_ids=[str(patients[1].id)])
    response = support_client.get(url)
    assert response.status_code == 200 and len(response.context["cl"].result_list) == 2
    by_user = support_client.get(url, {"user__id__exact": operator.pk})
    assert [log.username for log in by_user.context["cl"].result_list] == ["operator"]
    today = datetime.date.today()
    by_date = support_client.get(url, {"at__year": today.year, "at__month": today.month, "at__day": today.day})
    assert len(by_date.context["cl"].result_list) == 2
    by_model = support_client.get(url, {"model": "patients.patient", "action": "view"})
    assert len(by_model.context["cl"].result_list) == 2
    by_patient = support_client.get(url, {"q": str(patients[1].id)})
    assert list(by_patient.context["cl"].result_list) == [entry]
    for client in (support_client, operator_client):
        assert client.get(reverse("admin:patients_phiaccesslog_add")).status_code == 403
        change_url = reverse("admin:patients_phiaccesslog_change", args=[entry.id])
        assert client.post(change_url, {"username": "someone"}).status_code == 403
        delete_url = reverse("admin:patients_phiaccesslog_delete", args=[entry.id])
        assert client.post(delete_url, {"post": "yes"}).status_code == 403
        client.post(url, {"action": "delete_selected", "_selected_action": [entry.id], "post": "yes"})
    assert PhiAccessLog.objects.filter(id=entry.id, username="support").exists()


def test_the_model_refuses_updates_and_deletes(patients, support_client):
    support_client.get(reverse("admin:patients_patient_change", args=[patients[0].id]))
    entry = PhiAccessLog.objects.get()
    entry.username = "rewritten"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        PhiAccessLog.objects.filter(id=entry.id).update(username="rewritten")
    with pytest.raises(PermissionError):
        PhiAccessLog.objects.all().delete()
    assert PhiAccessLog.objects.get().username == "support"


def test_webhook_message_page_is_logged_for_phi_viewers_only(tenant, support_client, no_phi_client):
    WebhookEndpoint.objects.create(customer=tenant.customer, url="http://127.0.0.1:9/hook", key="signing-key")
    message = webhook_message_create(
        customer_id=tenant.customer.id, message_type="ping", data={"ping": "https://s3.example/x"}, request_id="r1"
    )
    url = reverse("admin:webhooks_webhookmessage_change", args=[message.id])
    assert no_phi_client.get(url).status_code == 200
    assert support_client.get(url).status_code == 200
    assert list(PhiAccessLog.objects.values_list("username", "model", "object_ids")) == [
        ("support", "webhooks.webhookmessage", [str(message.id)])
    ]
