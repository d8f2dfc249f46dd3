"""The single-patient API (SPEC §1): create with the bulk normalizers and match rule, get, update with
If-Match, delete, match, get by external id, HIE opt-out; facility delete. Failure modes named: bad JSON
shapes and values (400 naming the field, no value echoed), a stale eTag (412), a match instead of a
duplicate, another customer's ids (404), a facility with patients (409), an opted-out patient (no query)."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from bulkimport.models import BulkRow
from docqueries.models import DocumentQuery
from patients.models import Facility, Patient
from tests.helpers.bulk import csv_bytes, person, result_rows, run_inline, submit
from tests.helpers.factories import make_facility

pytestmark = pytest.mark.django_db

ADDRESS = {"addressLine1": "1 Main St", "city": "New York", "state": "NY", "zip": "10001", "country": "USA"}


def body(**overrides) -> dict:
    data = {
        "firstName": "Ann",
        "lastName": "Doe",
        "dob": "1980-01-02",
        "genderAtBirth": "F",
        "address": [ADDRESS],
        "contact": [{"phone": "(212) 555-0100", "email": "Ann@Example.com"}],
        "personalIdentifiers": [{"type": "ssn", "value": "123-45-6789"}],
        "externalId": "MRN-1",
    }
    data.update(overrides)
    return data


def create(api, tenant, data: dict, **params):
    query = {"facilityId": str(tenant.facility.id), **params}
    return api.post("/medical/v1/patient?" + "&".join(f"{k}={v}" for k, v in query.items()), data, format="json")


def test_create_normalizes_as_a_bulk_row_and_starts_a_document_query(api, tenant):
    answer = create(api, tenant, body(firstName="  ANN ", address=ADDRESS))  # one object, not a list
    assert answer.status_code == 201, answer.json()
    created = answer.json()
    assert created["firstName"] == "Ann" and created["facilityIds"] == [str(tenant.facility.id)]
    assert created["contact"] == [{"phone": "2125550100", "email": "ann@example.com"}]
    assert created["personalIdentifiers"] == [{"type": "ssn", "value": "123456789"}]
    assert created["hieOptOut"] is False and created["eTag"] and created["externalId"] == "MRN-1"
    assert DocumentQuery.objects.filter(patient_id=created["id"]).count() == 1


def test_create_answers_the_patient_a_bulk_import_made_instead_of_a_duplicate(api, tenant):
    request = submit(tenant, csv_bytes([person("Ann")]))
    run_inline(request.id)
    (imported,) = Patient.objects.all()
    answer = create(api, tenant, body(firstName="ann", contact=None, personalIdentifiers=None, externalId=None))
    assert answer.status_code == 200
    assert answer.json()["id"] == str(imported.id)
    assert Patient.objects.count() == 1
    # The same person uploaded again after the API created them is matched the other way round too.
    other = create(api, tenant, body(firstName="Bea"))
    assert other.status_code == 201
    again = submit(tenant, csv_bytes([person("Bea")]))
    run_inline(again.id)
    assert str(BulkRow.objects.get(request=again).patient_id) == other.json()["id"]


def test_fullwidth_digits_and_look_alikes_match_as_a_bulk_row_does(api, tenant):
    """Fullwidth digits in dob and zip read as ASCII, and a look-alike spelling is the same person, through
    create and match exactly as through a bulk row."""
    request = submit(tenant, csv_bytes([person("Ann", zip_code="\uff11\uff10\uff10\uff10\uff11")]))
    run_inline(request.id)
    (imported,) = Patient.objects.all()
    assert imported.zips == ["10001"]
    fullwidth = body(
        firstName="\u0410nn\u200f",  # Cyrillic А, a bidi mark
        dob="\uff11\uff19\uff18\uff10\uff0d\uff10\uff11\uff0d\uff10\uff12",
        address=[{**ADDRESS, "zip": "\uff11\uff10\uff10\uff10\uff11"}],
    )
    match = api.post("/medical/v1/patient/match", fullwidth, format="json")
    assert match.status_code == 200 and match.json()["id"] == str(imported.id)
    answer = create(api, tenant, fullwidth)
    assert answer.status_code == 200 and answer.json()["id"] == str(imported.id)
    assert Patient.objects.count() == 1
    # An update with fullwidth digits stores ASCII ones.
    updated = api.put(f"/medical/v1/patient/{imported.id}?facilityId={tenant.facility.id}", fullwidth, format="json")
    assert updated.status_code == 200, updated.json()
    assert updated.json()["dob"] == "1980-01-02" and updated.json()["address"][0]["zip"] == "10001"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (body(dob="1975-13-01"), "dob"),
        (body(dob="2999-01-01"), "dob"),
        (body(genderAtBirth="X"), "genderAtBirth"),
        (body(address=[{**ADDRESS, "zip": "ABCDE"}]), "address[0].zip"),
        (body(address=[ADDRESS, {**ADDRESS, "state": "Calfornia"}]), "address[1].state"),
        (body(address=[{**ADDRESS, "country": "CAN"}]), "address[0].country"),
        (body(address=[]), "address"),
        (body(address="1 Main St"), "address"),
        (body(contact=[{"phone": "12"}]), "contact[0].phone"),
        (body(contact=[{}, {"email": "not-an-email"}]), "contact[1].email"),
        (body(firstName=7), "firstName"),
        (body(lastName=None), "lastName"),
        (body(personalIdentifiers=[{"type": "passport", "value": "X1"}]), "personalIdentifiers[0].type"),
        (body(personalIdentifiers=[{"type": "driversLicense", "value": "D1"}]), "personalIdentifiers"),
        (body(hieOptOut="yes"), "hieOptOut"),
        ([1, 2], "body"),
    ],
)
def test_bad_bodies_are_400s_naming_the_field_without_echoing_values(api, tenant, data, field):
    answer = create(api, tenant, data)
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith(f"{field}:") or f"; {field}:" in detail, detail
    assert "Calfornia" not in detail and "not-an-email" not in detail
    assert Patient.objects.count() == 0


@pytest.mark.parametrize("value", ["yes", "1", 1, 0, "true"])
def test_hie_opt_out_in_a_body_must_be_a_json_boolean(api, tenant, value):
    refused = {"status": 400, "name": "BadRequestError", "title": "Bad request"}
    refused["detail"] = "hieOptOut: Must be a JSON boolean: true or false."
    answer = create(api, tenant, body(hieOptOut=value))
    assert answer.status_code == 400 and answer.json() == refused
    assert not Patient.objects.exists() and not DocumentQuery.objects.exists()
    created = create(api, tenant, body()).json()
    before = Patient.objects.get().updated_at
    url = f"/medical/v1/patient/{created['id']}?facilityId={tenant.facility.id}"
    for answer in (
        api.put(url, body(hieOptOut=value), format="json"),
        api.post("/medical/v1/patient/match", body(hieOptOut=value), format="json"),
    ):
        assert answer.status_code == 400 and answer.json() == refused
    stored = Patient.objects.get()
    assert stored.hie_opt_out is False and stored.updated_at == before


def test_hie_opt_out_null_in_a_body_is_not_said(api, tenant):
    created = create(api, tenant, body(hieOptOut=True)).json()
    url = f"/medical/v1/patient/{created['id']}?facilityId={tenant.facility.id}"
    answer = api.put(url, body(hieOptOut=None), format="json")
    assert answer.status_code == 200 and answer.json()["hieOptOut"] is True  # unchanged, as when absent


def test_the_nulls_the_python_sdk_sends_are_read_as_absent(api, tenant):
    """The PyPI SDK sends null for every optional argument or model field given as None (externalId,
    personalIdentifiers, contact, an address's addressLine2 and country, a contact's phone or email, an
    identifier's assigner and period): create, update and match read each as left out."""
    address = {**ADDRESS, "addressLine2": None, "country": None}
    ssn = {"type": "ssn", "value": "123-45-6789", "assigner": None, "period": None}
    with_nulls = body(
        externalId=None, address=[address], personalIdentifiers=[ssn], contact=[{"phone": None, "email": "a@b.co"}]
    )
    created = create(api, tenant, with_nulls)
    assert created.status_code == 201, created.json()
    assert created.json()["contact"] == [{"email": "a@b.co"}] and "externalId" not in created.json()
    assert created.json()["address"] == [ADDRESS]
    assert created.json()["personalIdentifiers"] == [{"type": "ssn", "value": "123456789"}]
    bare = body(externalId=None, address=[address], personalIdentifiers=None, contact=None)
    url = f"/medical/v1/patient/{created.json()['id']}?facilityId={tenant.facility.id}"
    updated = api.put(url, bare, format="json")
    assert updated.status_code == 200, updated.json()
    answer = updated.json()  # as a PUT without them
    assert answer["personalIdentifiers"] == answer["contact"] == [] and "externalId" not in answer
    matched = api.post("/medical/v1/patient/match", {k: v for k, v in bare.items() if k != "externalId"}, format="json")
    assert matched.status_code == 200 and matched.json()["id"] == created.json()["id"]


def test_the_openapi_schema_marks_nullable_what_null_is_read_as_absent_in():
    components = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    nullable = {
        ("FacilityRequest", "tin"),
        ("FacilityRequest", "active"),
        ("AddressRequest", "addressLine2"),
        ("AddressRequest", "country"),
        ("PatientInputRequest", "externalId"),
        ("PatientInputRequest", "personalIdentifiers"),
        ("PatientInputRequest", "contact"),
        ("PatientInputRequest", "hieOptOut"),
        ("ContactInputRequest", "phone"),
        ("ContactInputRequest", "email"),
    }
    assert {key for key in nullable if components[key[0]]["properties"][key[1]].get("nullable")} == nullable


@pytest.mark.parametrize("value", ["yes", "1", "0", "TRUE", ""])
def test_hie_opt_out_query_is_the_word_true_or_false(api, tenant, value):
    created = create(api, tenant, body()).json()
    for call in (api.put, api.post):
        answer = call(f"/medical/v1/patient/{created['id']}/hie-opt-out?hieOptOut={value}")
        assert answer.status_code == 400 and answer.json()["detail"] == 'hieOptOut: Must be "true" or "false".'
    assert Patient.objects.get().hie_opt_out is False


def test_create_needs_a_facility_of_the_customer(api, tenant, other_tenant):
    make_facility(tenant.customer, name="Second")
    assert api.post("/medical/v1/patient", body(), format="json").status_code == 400  # two facilities, none given
    answer = api.post(f"/medical/v1/patient?facilityId={other_tenant.facility.id}", body(), format="json")
    assert answer.status_code == 404


def test_update_honours_if_match(api, tenant):
    created = create(api, tenant, body()).json()
    url = f"/medical/v1/patient/{created['id']}?facilityId={tenant.facility.id}"
    updated = api.put(url, body(lastName="Smith"), format="json", HTTP_IF_MATCH=created["eTag"])
    assert updated.status_code == 200, updated.json()
    assert updated.json()["lastName"] == "Smith" and updated.json()["eTag"] != created["eTag"]
    stale = api.put(url, body(lastName="Jones"), format="json", HTTP_IF_MATCH=created["eTag"])
    assert stale.status_code == 412 and stale.json()["name"] == "PreconditionFailedError"
    assert Patient.objects.get().last_name == "Smith"
    # Without If-Match the write is unconditional (the Python SDK sends none); the new name is matched.
    assert api.put(url, body(lastName="Jones"), format="json").status_code == 200
    match = api.post("/medical/v1/patient/match", body(lastName="Jones"), format="json")
    assert match.status_code == 200 and match.json()["id"] == created["id"]
    assert api.post("/medical/v1/patient/match", body(lastName="Smith"), format="json").status_code == 404


def test_if_match_uses_the_strong_comparison(api, tenant):
    """RFC 9110 §13.1.1: a weak tag never passes If-Match, even with the current value; quoted or bare passes."""
    created = create(api, tenant, body()).json()
    url = f"/medical/v1/patient/{created['id']}?facilityId={tenant.facility.id}"
    etag = created["eTag"]
    for weak in (f'W/"{etag}"', f"W/{etag}", f'"other", W/"{etag}"'):
        answer = api.put(url, body(lastName="Weak"), format="json", HTTP_IF_MATCH=weak)
        assert answer.status_code == 412, weak
        assert api.delete(url, HTTP_IF_MATCH=weak).status_code == 412
    assert Patient.objects.get().last_name == "Doe"
    quoted = api.put(url, body(lastName="Quoted"), format="json", HTTP_IF_MATCH=f'"stale", "{etag}"')
    assert quoted.status_code == 200 and quoted.json()["lastName"] == "Quoted"


def test_a_put_that_changes_nothing_keeps_the_etag(api, tenant):
    created = create(api, tenant, body()).json()
    url = f"/medical/v1/patient/{created['id']}?facilityId={tenant.facility.id}"
    before = Patient.objects.get().updated_at
    same = api.put(url, body(), format="json", HTTP_IF_MATCH=created["eTag"])
    assert same.status_code == 200 and same.json()["eTag"] == created["eTag"]
    assert Patient.objects.get().updated_at == before
    # Written differently, normalized the same (spaces, case, phone punctuation): still nothing changed.
    again = api.put(url, body(firstName=" ANN ", contact=[{"phone": "212-555-0100", "email": "ann@example.com"}]),
                    format="json", HTTP_IF_MATCH=created["eTag"])  # fmt: skip
    assert again.status_code == 200 and again.json()["eTag"] == created["eTag"]
    # A new facility link changes facilityIds: a new eTag.
    other = make_facility(tenant.customer, name="Second")
    linked = api.put(f"/medical/v1/patient/{created['id']}?facilityId={other.id}", body(), format="json")
    assert linked.status_code == 200 and linked.json()["eTag"] != created["eTag"]
    facility = api.get(f"/medical/v1/facility/{tenant.facility.id}").json()
    unchanged = {key: facility[key] for key in ("name", "npi", "address")}
    put = api.put(f"/medical/v1/facility/{tenant.facility.id}", unchanged, format="json")
    assert put.status_code == 200 and put.json()["eTag"] == facility["eTag"]


def test_match_by_external_id_and_delete(api, tenant, other_tenant):
    created = create(api, tenant, body()).json()
    found = api.get("/medical/v1/patient/external-id?externalId=MRN-1")
    assert found.status_code == 200 and found.json()["id"] == created["id"]
    assert api.get("/medical/v1/patient/external-id?externalId=MRN-2").status_code == 404
    assert api.get("/medical/v1/patient/external-id").status_code == 400
    other = make_facility(tenant.customer, name="Elsewhere")
    assert api.delete(f"/medical/v1/patient/{created['id']}?facilityId={other.id}").status_code == 404
    assert api.delete(f"/medical/v1/patient/{created['id']}", HTTP_IF_MATCH="stale").status_code == 412
    assert api.delete(f"/medical/v1/patient/{created['id']}?facilityId={tenant.facility.id}").status_code == 204
    assert not Patient.objects.exists() and not DocumentQuery.objects.exists()
    assert api.get(f"/medical/v1/patient/{created['id']}").status_code == 404


def test_another_customers_patient_is_not_found(api, tenant, other_tenant):
    from tests.helpers.api import client_for

    created = create(api, tenant, body()).json()
    theirs = client_for(other_tenant.api_key)
    for answer in (
        theirs.get(f"/medical/v1/patient/{created['id']}"),
        theirs.put(f"/medical/v1/patient/{created['id']}", body(), format="json"),
        theirs.delete(f"/medical/v1/patient/{created['id']}"),
        theirs.put(f"/medical/v1/patient/{created['id']}/hie-opt-out?hieOptOut=true"),
        theirs.get("/medical/v1/patient/external-id?externalId=MRN-1"),
        theirs.post("/medical/v1/patient/match", body(), format="json"),
    ):
        assert answer.status_code == 404
    assert Patient.objects.get().last_name == "Doe"


def test_hie_opt_out_stops_document_queries_from_api_and_bulk(api, tenant):
    created = create(api, tenant, body(hieOptOut=True)).json()
    assert created["hieOptOut"] is True and not DocumentQuery.objects.exists()
    refused = api.post(f"/medical/v1/document/query?patientId={created['id']}")
    assert refused.status_code == 400 and "opted out" in refused.json()["detail"]
    url = f"/medical/v1/patient/{created['id']}/hie-opt-out"
    assert api.put(url + "?hieOptOut=maybe").status_code == 400
    answer = api.post(url + "?hieOptOut=false")
    assert answer.json() == {"id": created["id"], "hieOptOut": False, "message": "Patient opted into HIE"}
    answer = api.put(url + "?hieOptOut=true")
    assert answer.status_code == 200 and answer.json()["hieOptOut"] is True
    # A bulk row matching the opted-out patient updates it but starts no query; the result says why.
    request = submit(tenant, csv_bytes([person("Ann")]))
    run_inline(request.id)
    assert not DocumentQuery.objects.exists()
    assert str(BulkRow.objects.get(request=request).patient_id) == created["id"]
    (row,) = result_rows(request.id)
    assert row["status"] == "successful" and row["documentQuery"] == "opted out"


def test_facility_delete(api, tenant):
    empty = make_facility(tenant.customer, name="Empty")
    create(api, tenant, body())
    busy = api.delete(f"/medical/v1/facility/{tenant.facility.id}")
    assert busy.status_code == 409 and "still has patients" in busy.json()["detail"]
    assert api.delete(f"/medical/v1/facility/{empty.id}", HTTP_IF_MATCH="stale").status_code == 412
    assert api.delete(f"/medical/v1/facility/{empty.id}").status_code == 204
    assert list(Facility.objects.values_list("id", flat=True)) == [tenant.facility.id]


def test_a_facility_with_bulk_requests_is_409_not_500(api, tenant):
    # Its bulk requests keep the facility for the record (PROTECT): the refusal is a conflict, not a crash.
    named = make_facility(tenant.customer, name="Imports only")
    created = api.post(f"/medical/v1/patient/bulk?facilityId={named.id}")
    assert created.status_code == 200, created.content
    refused = api.delete(f"/medical/v1/facility/{named.id}")
    assert refused.status_code == 409 and "has bulk requests" in refused.json()["detail"]
    assert Facility.objects.filter(id=named.id).exists()
