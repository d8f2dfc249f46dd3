"""PHI through admin lookups: staff without `patients.view_phi` learn nothing from any changelist URL.

Every field of every admin'd model, every lookup its class registers (and JSON key transforms for the bulk row
cells), directly and through each relation of the admin's model: the answer is a 400 or exactly the unfiltered
page. The PHI fields are listed here, independently of the admin and of the models' declarations: on the models
holding demographics every field is PHI unless named in NOT_PHI, so a new field counts as PHI until someone decides
otherwise (tests/admin/test_phi_declarations.py holds the declarations to the same rule).
"""

from __future__ import annotations

import datetime

import pytest
from django.contrib import admin
from django.db import models
from django.urls import reverse

from bulkimport.models import BulkRow
from docqueries.models import DocumentQuery
from patients.models import ApiKey, Patient, PatientFacility
from tests.helpers.bulk import run_bulk, sample_bytes
from webhooks.models import WebhookEndpoint, WebhookMessage
from webhooks.services import webhook_message_create

APPS = ("patients", "bulkimport", "docqueries", "webhooks")
# Models holding demographics (or links to them): their fields not named here are PHI.
NOT_PHI = {
    "patients.patient": {"id", "customer", "facilities", "external_id", "created_at", "updated_at", "hie_opt_out"},
    "bulkimport.bulkrow": {
        "id",
        "request",
        "number",
        "status",
        "reason",
        "patient",
        "action",
        "error_code",
        "matched_patient_id",
        "matched_on",
        "duplicate_of",
        "drift",
    },  # fmt: skip
    "docqueries.documentquery": {
        "id",
        "customer",
        "patient",
        "bulk_request_id",
        "status",
        "started_at",
        "finished_at",
        "attempts",
        "next_attempt_at",
        "error",
        "express",
    },
    "webhooks.webhookmessage": {
        "id",
        "customer",
        "message_type",
        "request_id",
        "status",
        "attempts",
        "failures",
        "next_attempt_at",
        "give_up_at",
        "created_at",
        "last_attempt_at",
        "delivered_at",
        "last_status_code",
        "last_error",
        "lane",
        "ordered",
    },
}
# Key transforms into the bulk row cells: a raw cell by position, normalized values by name.
JSON_KEYS = {"raw": ("0", "1", "2", "3"), "normalized": ("ssn", "firstName", "lastName", "dob")}


def phi_fields(model: type[models.Model]) -> list[models.Field]:
    keep = NOT_PHI.get(model._meta.label_lower)
    if keep is None:
        return []
    return [field for field in model._meta.get_fields() if field.name not in keep and not field.is_relation]


def probe_value(lookup: str, value) -> str:
    text = str(value)
    if lookup == "isnull":
        return "False"
    if lookup in ("regex", "iregex"):
        return "^" + text[:2]
    if lookup == "range":
        return f"{text},{text}"
    if lookup in ("startswith", "istartswith"):
        return text[:3]
    if lookup in ("year", "iso_year"):
        return text[:4]
    if lookup in ("has_key", "has_keys", "has_any_keys"):
        return "ssn"
    return text


def paths_for(model: type[models.Model], patient: Patient, row: BulkRow) -> list[tuple[str, str]]:
    """(lookup, value) pairs reaching PHI: the model's own PHI fields, then those one relation away."""
    targets: list[tuple[str, type[models.Model]]] = [("", model)]
    for field in model._meta.get_fields():
        if field.is_relation and field.related_model is not None and field.related_model._meta.app_label in APPS:
            targets.append((f"{field.name}__", field.related_model))
    samples = {Patient: patient, BulkRow: row}
    pairs = []
    for prefix, target in targets:
        for field in phi_fields(target):
            sample = getattr(samples.get(target), field.name, "x") if target in samples else "x"
            for lookup in sorted(field.get_lookups()):
                pairs.append((f"{prefix}{field.name}__{lookup}", probe_value(lookup, sample)))
            pairs.append((f"{prefix}{field.name}", str(sample)))
            for key in JSON_KEYS.get(field.name, ()):
                cell = sample[int(key)] if isinstance(sample, list) else (sample or {}).get(key, "")
                for lookup in ("exact", "iexact", "icontains", "startswith", "regex", "isnull", "in", "gt"):
                    pairs.append((f"{prefix}{field.name}__{key}__{lookup}", probe_value(lookup, cell)))
                pairs.append((f"{prefix}{field.name}__{key}", str(cell)))
    return pairs


@pytest.fixture
def world(tenant):
    """Two patients (one with known demographics), a completed import, a Document Query and a webhook."""
    completed = run_bulk(tenant, sample_bytes(6, invalid_ratio=0.0, seed=3))
    patient = Patient.objects.create(
        customer=tenant.customer,
        external_id="MRN-0042",
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
    DocumentQuery.objects.create(
        customer=tenant.customer, patient=patient, status="completed", documents=[{"description": "Discharge"}]
    )
    WebhookEndpoint.objects.create(customer=tenant.customer, url="http://127.0.0.1:9/hook", key="signing-key")
    webhook_message_create(
        customer_id=tenant.customer.id, message_type="ping", data={"ping": "https://s3.example/x"}, request_id="r1"
    )
    row = BulkRow.objects.filter(request=completed, normalized__isnull=False).order_by("number").first()
    return patient, row


def admin_models():
    return [model for model in admin.site._registry if model._meta.app_label in APPS]


def result_ids(response) -> list:
    return [obj.pk for obj in response.context["cl"].result_list]


@pytest.mark.parametrize("model", admin_models(), ids=lambda model: model._meta.label_lower)
def test_no_phi_lookup_answers_anything_but_400_or_the_unfiltered_page(model, world, no_phi_client):
    patient, row = world
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    unfiltered = no_phi_client.get(url)
    assert unfiltered.status_code == 200
    baseline = result_ids(unfiltered)
    pairs = paths_for(model, patient, row)
    leaks = []
    for lookup, value in pairs:
        response = no_phi_client.get(url, {lookup: value})
        if response.status_code == 400:
            continue
        if response.status_code == 302 and response["Location"].endswith("?e=1"):
            # Django's answer to a value its field cannot take (a date lookup given "x"): the same for every
            # value, so it tells nothing; only non-PHI fields get this far (PHI lookups are refused first).
            continue
        if response.status_code != 200 or result_ids(response) != baseline:
            leaks.append((lookup, value, response.status_code))
    assert leaks == []
    if model in (Patient, BulkRow, DocumentQuery):
        assert len(pairs) > 50  # the probe really covered the PHI fields


def test_the_probe_covers_every_demographic_field(world):
    names = {field.name for field in phi_fields(Patient)}
    assert names >= {"first_name", "last_name", "dob", "ssn", "addresses", "contacts", "drivers_license", "zips"}
    assert {field.name for field in phi_fields(BulkRow)} == {"raw", "normalized", "match_key"}


@pytest.mark.parametrize("value", [",", "", "a", "a,b,c"])
def test_a_malformed_range_lookup_is_a_400_not_a_500(world, no_phi_client, value):
    # A range literal is split by Django on commas: any count but two was an IndexError (a 500) while counting.
    url = reverse("admin:bulkimport_bulkrow_changelist")
    assert no_phi_client.get(url, {"error_code__range": value}).status_code == 400


@pytest.mark.parametrize(
    "ordering_column", range(7), ids=lambda index: f"o={index}"
)  # every column of the patient list, both directions
def test_no_phi_ordering_by_a_phi_column_is_the_unordered_page(world, tenant, no_phi_client, ordering_column):
    Patient.objects.create(
        customer=tenant.customer, first_name="Aaron", last_name="Aalto", dob=datetime.date(2001, 1, 1),
        gender_at_birth="M", match_key="aaron|aalto|2001-01-01|m",
    )  # fmt: skip
    url = reverse("admin:patients_patient_changelist")
    baseline = result_ids(no_phi_client.get(url))
    for direction in ("", "-"):
        response = no_phi_client.get(url, {"o": f"{direction}{ordering_column}"})
        assert response.status_code == 200
        if ordering_column in (3, 4, 5):  # name, dob, ssn: hidden columns
            assert result_ids(response) == baseline


def test_no_phi_search_ignores_phi_values(world, no_phi_client):
    patient, row = world
    url = reverse("admin:patients_patient_changelist")
    baseline = result_ids(no_phi_client.get(url))
    for term in ("Zelda", "912345678", "1961-07-14", "Sunset"):
        response = no_phi_client.get(url, {"q": term})
        assert response.status_code == 200
        assert patient.pk not in result_ids(response) or result_ids(response) == baseline


def test_phi_viewer_keeps_working_lookups(world, support_client):
    patient, row = world
    patients_url = reverse("admin:patients_patient_changelist")
    for lookup, value in (("ssn", "912345678"), ("first_name__iexact", "zelda"), ("dob", "1961-07-14")):
        response = support_client.get(patients_url, {lookup: value})
        assert response.status_code == 200
        assert result_ids(response) == [patient.pk]
    rows_url = reverse("admin:bulkimport_bulkrow_changelist")
    response = support_client.get(rows_url, {"normalized__ssn": row.normalized["ssn"], "request": row.request_id})
    assert response.status_code == 200 and row.pk in result_ids(response)
    response = support_client.get(rows_url, {"raw__icontains": row.raw[1], "request": row.request_id})
    assert response.status_code == 200 and row.pk in result_ids(response)


def test_secrets_refused_to_everybody(world, operator_client):
    for model, lookup in ((WebhookEndpoint, "key__startswith"), (ApiKey, "hashed_key__startswith")):
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert operator_client.get(url, {lookup: "s"}).status_code == 400
    assert WebhookMessage.objects.count() == 1
