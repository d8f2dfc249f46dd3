"""Patient endpoints in Metriport's shape, scoped per customer."""

import datetime

import pytest

from patients.models import Patient, PatientFacility
from tests.helpers.factories import make_facility

pytestmark = pytest.mark.django_db


def _patient(tenant, **overrides) -> Patient:
    fields = {
        "customer": tenant.customer,
        "first_name": "Ana",
        "last_name": "Silva",
        "dob": datetime.date(1980, 2, 3),
        "gender_at_birth": "F",
        "external_id": "ext-1",
        "ssn": "123456789",
        "addresses": [
            {
                "addressLine1": "1 A St",
                "addressLine2": None,
                "city": "Austin",
                "state": "TX",
                "zip": "78701",
                "country": "USA",
            }
        ],
        "contacts": [{"phone": "5125550100", "email": "ana@example.com"}],
        "match_key": "ana|silva|1980-02-03|F",
        "zips": ["78701"],
    }
    fields.update(overrides)
    patient = Patient.objects.create(**fields)
    PatientFacility.objects.create(patient=patient, facility=tenant.facility)
    return patient


def test_patient_detail_shape(api, tenant):
    patient = _patient(tenant)
    body = api.get(f"/medical/v1/patient/{patient.id}").json()
    assert body.pop("eTag") and body.pop("dateCreated").startswith(patient.created_at.date().isoformat())
    address_without_null = [{k: v for k, v in a.items() if v is not None} for a in patient.addresses]
    assert "addressLine2" not in address_without_null[0]  # optional strings are omitted, never null
    assert body == {
        "id": str(patient.id),
        "facilityIds": [str(tenant.facility.id)],
        "externalId": "ext-1",
        "firstName": "Ana",
        "lastName": "Silva",
        "dob": "1980-02-03",
        "genderAtBirth": "F",
        "personalIdentifiers": [{"type": "ssn", "value": "123456789"}],
        "address": address_without_null,
        "contact": patient.contacts,
        "hieOptOut": False,
    }


def test_patient_without_external_id_omits_it(api, tenant):
    patient = _patient(tenant, external_id="", contacts=[{"phone": "5125550100", "email": None}])
    body = api.get(f"/medical/v1/patient/{patient.id}").json()
    assert "externalId" not in body and body["contact"] == [{"phone": "5125550100"}]


def test_patient_list_filters_by_facility_and_paginates(api, tenant):
    other_facility = make_facility(tenant.customer, name="Second", npi_body="111111111")
    first = _patient(tenant)
    second = _patient(tenant, first_name="Bo", match_key="bo|silva|1980-02-03|F")
    PatientFacility.objects.filter(patient=second).update(facility=other_facility)
    listed = api.get("/medical/v1/patient", {"facilityId": str(tenant.facility.id)}).json()
    assert [p["id"] for p in listed["patients"]] == [str(first.id)]
    everything = api.get("/medical/v1/patient", {"count": 1}).json()
    assert everything["meta"]["itemsOnPage"] == 1 and everything["meta"]["nextPage"]


def test_other_customers_patient_is_404(api, other_tenant):
    foreign = _patient(other_tenant)
    assert api.get(f"/medical/v1/patient/{foreign.id}").status_code == 404
    assert api.get("/medical/v1/patient", {"facilityId": str(other_tenant.facility.id)}).status_code == 404
    assert api.get("/medical/v1/patient").json()["patients"] == []


def test_patient_list_query_count_is_constant(api, tenant, django_assert_max_num_queries):
    for i in range(5):
        _patient(tenant, first_name=f"P{i}", match_key=f"p{i}|silva|1980-02-03|F")
    with django_assert_max_num_queries(4):
        assert len(api.get("/medical/v1/patient").json()["patients"]) == 5


def test_patient_list_reads_metriports_from_item_and_to_item(api, tenant):
    """Metriport's pagination parameters: fromItem starts a page at an item, toItem ends one there, and the
    answer's nextPage/prevPage continue from it (omitted, never null, at either end)."""
    patients = [_patient(tenant, first_name=f"P{i}", match_key=f"p{i}|silva|1980-02-03|F") for i in range(5)]
    newest_first = [str(p.id) for p in reversed(patients)]
    page = api.get("/medical/v1/patient", {"fromItem": newest_first[1], "count": 2}).json()
    assert [p["id"] for p in page["patients"]] == newest_first[1:3]
    assert api.get(page["meta"]["nextPage"]).json()["patients"][0]["id"] == newest_first[3]
    assert api.get(page["meta"]["prevPage"]).json()["patients"][-1]["id"] == newest_first[0]
    ending = api.get("/medical/v1/patient", {"toItem": newest_first[3], "count": 2}).json()
    assert [p["id"] for p in ending["patients"]] == newest_first[2:4]
    last = api.get("/medical/v1/patient", {"fromItem": newest_first[4], "count": 2}).json()
    assert [p["id"] for p in last["patients"]] == newest_first[4:] and "nextPage" not in last["meta"]
    first = api.get("/medical/v1/patient", {"count": 5}).json()
    assert "prevPage" not in first["meta"] and "nextPage" not in first["meta"]
    for bad in (
        {"fromItem": "nope"},
        {"toItem": str(tenant.facility.id)},
        {"fromItem": newest_first[0], "toItem": newest_first[1]},
    ):
        assert api.get("/medical/v1/patient", bad).status_code == 400
