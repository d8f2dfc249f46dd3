"""Metriport's cohort routes over HTTP. Failure modes named: a duplicate name (any case), a bad color,
purpose or settings value, a settings flag or allPatients that is not a JSON boolean, an empty name, a stale
eTag (412), another customer's cohort or patient (404), a body with neither or both of patientIds/allPatients,
deleting a cohort with patients (400), bad pages."""

from __future__ import annotations

import pytest

from cohorts.models import Cohort, PatientCohort
from patients.models import Patient
from tests.helpers.api import client_for
from tests.helpers.factories import make_tenant

pytestmark = pytest.mark.django_db

COHORT = "/medical/v1/cohort"
ADDRESS = {"addressLine1": "1 Main St", "city": "New York", "state": "NY", "zip": "10001", "country": "USA"}
DTO_KEYS = ["id", "eTag", "name", "description", "color", "purposeOfUse", "settings", "size"]
# What DRF's BooleanField would read as a boolean (or null), and Metriport's zod schemas refuse.
NOT_JSON_BOOLEANS = ["yes", "1", 1, 0, None, "true"]
NOT_A_BOOLEAN = "Must be a JSON boolean: true or false."
SETTINGS_FLAGS = [
    ("adt", "enabled"),
    ("hie", "enabled"),
    ("pharmacy", "notifications"),
    ("pharmacy", "schedule", "enabled"),
    ("laboratory", "notifications"),
]
DEFAULT_MONITORING = {
    "adt": {"enabled": False},
    "hie": {"enabled": False, "frequency": "monthly"},
    "pharmacy": {"notifications": False, "schedule": {"enabled": False, "frequency": "monthly"}},
    "laboratory": {"notifications": False},
}


def make_patient(api, tenant, first: str) -> str:
    body = {"firstName": first, "lastName": "Doe", "dob": "1980-01-02", "genderAtBirth": "F", "address": [ADDRESS]}
    answer = api.post(f"/medical/v1/patient?facilityId={tenant.facility.id}", body, format="json")
    assert answer.status_code == 201, answer.json()
    return answer.json()["id"]


def create(api, **body):
    return api.post(COHORT, {"name": "High Risk", **body}, format="json")


def test_create_answers_metriports_dto_with_defaults(api):
    answer = create(api, description="Frequent monitoring", color=" RED ")
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert list(body) == DTO_KEYS
    assert body["name"] == "High Risk" and body["color"] == "red" and body["eTag"] == "1"
    assert body["purposeOfUse"] == "treatment" and body["size"] == 0
    assert body["settings"] == {"monitoring": DEFAULT_MONITORING}


def test_create_merges_partial_settings_and_drops_unknown_keys(api):
    settings = {"monitoring": {"hie": {"enabled": True}, "adt": {"enabled": True, "extra": 1}}, "overrides": {}}
    body = create(api, settings=settings).json()
    assert body["settings"]["monitoring"]["hie"] == {"enabled": True, "frequency": "monthly"}
    assert body["settings"]["monitoring"]["adt"] == {"enabled": True}
    assert "overrides" not in body["settings"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"name": "  "}, "name"),
        ({"name": "x" * 201}, "name"),
        # Upper-casing lengthens it past the compared key's 200 characters (a 500 on PostgreSQL before).
        ({"name": "ß" * 101}, "once upper-cased"),
        ({"color": "teal"}, "color"),
        ({"purposeOfUse": "marketing"}, "purposeOfUse"),
        ({"settings": {"monitoring": {"hie": {"frequency": "hourly"}}}}, "settings.monitoring.hie.frequency"),
        ({"settings": {"monitoring": {"adt": {"enabled": "yes"}}}}, "settings.monitoring.adt.enabled"),
        ({"settings": []}, "settings: Must be an object"),
    ],
)
def test_create_refuses_bad_values(api, body, words):
    answer = api.post(COHORT, {"name": "High Risk", **body}, format="json")
    assert answer.status_code == 400 and words in answer.json()["detail"], answer.json()
    assert not Cohort.objects.exists()


def monitoring_with(flag: tuple[str, ...], value) -> dict:
    """{"monitoring": {"pharmacy": {"schedule": {"enabled": value}}}} for ("pharmacy", "schedule", "enabled")."""
    nested = value
    for key in reversed(flag):
        nested = {key: nested}
    return {"monitoring": nested}


@pytest.mark.parametrize("value", NOT_JSON_BOOLEANS)
@pytest.mark.parametrize("flag", SETTINGS_FLAGS, ids=".".join)
def test_settings_flags_must_be_json_booleans(api, flag, value):
    refused = {"status": 400, "name": "BadRequestError", "title": "Bad request"}
    refused["detail"] = f"settings.monitoring.{'.'.join(flag)}: {NOT_A_BOOLEAN}"
    assert create(api, settings=monitoring_with(flag, value)).json() == refused
    assert not Cohort.objects.exists()
    cohort = create(api).json()
    answer = api.patch(f"{COHORT}/{cohort['id']}", {"settings": monitoring_with(flag, value)}, format="json")
    assert answer.status_code == 400 and answer.json() == refused
    stored = Cohort.objects.get()
    assert stored.version == 1 and stored.settings["monitoring"] == DEFAULT_MONITORING


@pytest.mark.parametrize("value", [True, False])
def test_settings_flags_take_json_booleans(api, value):
    monitoring = {
        "adt": {"enabled": value},
        "hie": {"enabled": value},
        "pharmacy": {"notifications": value, "schedule": {"enabled": value}},
        "laboratory": {"notifications": value},
    }
    answer = create(api, settings={"monitoring": monitoring})
    assert answer.status_code == 201, answer.json()
    monitoring["hie"]["frequency"] = monitoring["pharmacy"]["schedule"]["frequency"] = "monthly"  # the defaults
    assert answer.json()["settings"]["monitoring"] == Cohort.objects.get().settings["monitoring"] == monitoring


def test_names_are_unique_per_customer_ignoring_case(api, other_tenant):
    create(api)
    again = create(api, name="  high RISK ")
    assert again.status_code == 400 and "already exists" in again.json()["detail"]
    assert create(client_for(other_tenant.api_key)).status_code == 201  # another customer's own
    assert Cohort.objects.count() == 2


def test_list_get_and_isolation(api, tenant, other_tenant):
    first = create(api, name="b").json()
    second = create(api, name="A").json()
    listed = api.get(COHORT).json()
    assert [c["id"] for c in listed["cohorts"]] == [second["id"], first["id"]]  # by name
    assert api.get(f"{COHORT}/{first['id']}").json() == first
    other = client_for(other_tenant.api_key)
    assert other.get(COHORT).json() == {"cohorts": []}
    for method in ("get", "patch", "delete"):
        assert getattr(other, method)(f"{COHORT}/{first['id']}", {}, format="json").status_code == 404
    assert api.get(f"{COHORT}/not-an-id").status_code == 404


def test_update_is_partial_checks_the_etag_and_bumps_it(api):
    cohort = create(api, description="keep me").json()
    url = f"{COHORT}/{cohort['id']}"
    updated = api.patch(
        url,
        {"name": "Renamed", "settings": {"monitoring": {"adt": {"enabled": True}}}},
        format="json",
        HTTP_IF_MATCH=cohort["eTag"],
    )
    assert updated.status_code == 200, updated.json()
    body = updated.json()
    assert body["name"] == "Renamed" and body["description"] == "keep me" and body["eTag"] == "2"
    assert body["settings"]["monitoring"]["adt"] == {"enabled": True}
    assert body["settings"]["monitoring"]["hie"] == DEFAULT_MONITORING["hie"]
    stale = api.patch(url, {"name": "Again"}, format="json", HTTP_IF_MATCH=cohort["eTag"])
    assert stale.status_code == 412 and api.get(url).json()["name"] == "Renamed"
    stale_in_body = api.put(url, {"name": "Again", "eTag": "1"}, format="json")
    assert stale_in_body.status_code == 412
    assert api.put(url, {"color": "blue"}, format="json").json()["color"] == "blue"  # no eTag: last write wins
    create(api, name="Taken")
    clash = api.patch(url, {"name": "TAKEN"}, format="json")
    assert clash.status_code == 400 and "already exists" in clash.json()["detail"]


def test_update_refuses_a_name_too_long_once_upper_cased(api):
    cohort = create(api).json()
    answer = api.patch(f"{COHORT}/{cohort['id']}", {"name": "ß" * 101}, format="json")
    assert answer.status_code == 400 and "once upper-cased" in answer.json()["detail"], answer.json()
    assert Cohort.objects.get().name == "High Risk"


def test_membership_add_list_remove(api, tenant):
    cohort = create(api).json()
    ann, bea = make_patient(api, tenant, "Ann"), make_patient(api, tenant, "Bea")
    url = f"{COHORT}/{cohort['id']}/patient"
    added = api.post(url, {"patientIds": [ann]}, format="json")
    assert added.status_code == 201
    assert added.json()["message"] == "Patient(s) added to cohort" and added.json()["cohort"]["size"] == 1
    again = api.post(url, {"patientIds": [ann, bea]}, format="json")  # already a member: unchanged
    assert again.json()["cohort"]["size"] == 2
    page = api.get(url, {"count": 1}).json()
    assert page["meta"]["itemsOnPage"] == 1 and "nextPage" in page["meta"]
    assert set(page["patients"][0]) >= {"id", "firstName", "facilityIds"}
    removed = api.delete(url, {"patientIds": [bea]}, format="json")
    assert removed.status_code == 200 and removed.json()["cohort"]["size"] == 1
    assert removed.json()["message"] == "Patient(s) removed from cohort"
    assert Patient.objects.filter(id=bea).exists()  # removing from a cohort keeps the patient
    everyone = api.post(url, {"allPatients": True}, format="json")
    assert everyone.json()["cohort"]["size"] == 2
    assert api.delete(url, {"allPatients": True}, format="json").json()["cohort"]["size"] == 0


@pytest.mark.parametrize(
    "body",
    [{}, {"patientIds": []}, {"allPatients": False}, {"allPatients": True, "patientIds": ["x"]}, {"patientIds": "x"}],
)
def test_membership_body_must_be_ids_or_all(api, body):
    cohort = create(api).json()
    answer = api.post(f"{COHORT}/{cohort['id']}/patient", body, format="json")
    assert answer.status_code == 400, answer.json()
    assert not PatientCohort.objects.exists()


@pytest.mark.parametrize("value", NOT_JSON_BOOLEANS)
def test_all_patients_must_be_a_json_boolean(api, tenant, value):
    cohort = create(api).json()
    ann, _ = make_patient(api, tenant, "Ann"), make_patient(api, tenant, "Bea")
    url = f"{COHORT}/{cohort['id']}/patient"
    api.post(url, {"patientIds": [ann]}, format="json")
    for method in (api.post, api.delete):  # read as true, these would add Bea, or remove Ann
        answer = method(url, {"allPatients": value}, format="json")
        assert answer.status_code == 400
        assert answer.json()["name"] == "BadRequestError"
        assert answer.json()["detail"] == f"allPatients: {NOT_A_BOOLEAN}"
    assert [str(link.patient_id) for link in PatientCohort.objects.all()] == [ann]


def test_unknown_or_other_customers_patients_are_404_and_nothing_is_added(api, tenant, other_tenant):
    cohort = create(api).json()
    ann = make_patient(api, tenant, "Ann")
    theirs = make_patient(client_for(other_tenant.api_key), other_tenant, "Zed")
    answer = api.post(f"{COHORT}/{cohort['id']}/patient", {"patientIds": [ann, theirs, "junk"]}, format="json")
    assert answer.status_code == 404
    assert (
        theirs in answer.json()["detail"] and "junk" in answer.json()["detail"] and ann not in answer.json()["detail"]
    )
    assert not PatientCohort.objects.exists()


def test_delete_refuses_a_cohort_with_patients(api, tenant):
    cohort = create(api).json()
    ann = make_patient(api, tenant, "Ann")
    api.post(f"{COHORT}/{cohort['id']}/patient", {"patientIds": [ann]}, format="json")
    refused = api.delete(f"{COHORT}/{cohort['id']}")
    assert refused.status_code == 400 and "remove its patients first" in refused.json()["detail"]
    api.delete(f"{COHORT}/{cohort['id']}/patient", {"allPatients": True}, format="json")
    assert api.delete(f"{COHORT}/{cohort['id']}").status_code == 204
    assert api.get(f"{COHORT}/{cohort['id']}").status_code == 404


def test_patient_cohorts_add_and_list(api, tenant, other_tenant):
    ann = make_patient(api, tenant, "Ann")
    one, two = create(api, name="One").json(), create(api, name="Two").json()
    answer = api.post(f"/medical/v1/patient/{ann}/cohort", {"cohortIds": [one["id"], two["id"]]}, format="json")
    assert answer.status_code == 200, answer.json()
    assert [c["name"] for c in answer.json()["cohorts"]] == ["One", "Two"]
    assert all(c["size"] == 1 for c in answer.json()["cohorts"])
    assert api.get(f"/medical/v1/patient/{ann}/cohort").json() == answer.json()
    theirs = create(client_for(other_tenant.api_key), name="Theirs").json()
    refused = api.post(f"/medical/v1/patient/{ann}/cohort", {"cohortIds": [theirs["id"]]}, format="json")
    assert refused.status_code == 404 and theirs["id"] in refused.json()["detail"]
    # An empty list (Metriport's schema has no minimum; the npm SDK can send one) joins nothing.
    unchanged = api.post(f"/medical/v1/patient/{ann}/cohort", {"cohortIds": []}, format="json")
    assert unchanged.status_code == 200 and unchanged.json() == answer.json()
    missing = api.post(f"/medical/v1/patient/{ann}/cohort", {}, format="json")
    assert missing.status_code == 400 and "cohortIds" in missing.json()["detail"]
    assert client_for(other_tenant.api_key).get(f"/medical/v1/patient/{ann}/cohort").status_code == 404


def test_cohort_patients_page_size_is_capped_at_100(api, tenant):
    cohort = create(api).json()
    answer = api.get(f"{COHORT}/{cohort['id']}/patient", {"count": 500})
    assert answer.status_code == 200 and answer.json() == {"meta": {"itemsOnPage": 0}, "patients": []}
    assert api.get(f"{COHORT}/{cohort['id']}/patient", {"cursor": "junk"}).status_code == 400


def test_openapi_lists_the_cohort_routes():
    from django.test import Client

    paths = Client().get("/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/medical/v1/cohort"])
    assert {"get", "patch", "put", "delete"} <= set(paths["/medical/v1/cohort/{cohort_id}"])
    assert {"get", "post", "delete"} <= set(paths["/medical/v1/cohort/{cohort_id}/patient"])
    assert {"get", "post"} <= set(paths["/medical/v1/patient/{patient_id}/cohort"])


def test_a_customer_without_cohorts(db):
    tenant = make_tenant("Empty")
    assert client_for(tenant.api_key).get(COHORT).json() == {"cohorts": []}


def test_patient_list_filters_by_cohort(api, tenant, other_tenant):
    cohort = create(api).json()
    ann, bea = make_patient(api, tenant, "Ann"), make_patient(api, tenant, "Bea")
    api.post(f"{COHORT}/{cohort['id']}/patient", {"patientIds": [ann]}, format="json")
    listed = api.get("/medical/v1/patient", {"cohortId": cohort["id"]}).json()
    assert [p["id"] for p in listed["patients"]] == [ann]
    assert bea in [p["id"] for p in api.get("/medical/v1/patient").json()["patients"]]
    assert api.get("/medical/v1/patient", {"cohortId": "junk"}).status_code == 404
    theirs = client_for(other_tenant.api_key).get("/medical/v1/patient", {"cohortId": cohort["id"]})
    assert theirs.status_code == 200 and theirs.json()["patients"] == []
