"""Metriport's own published clients, unchanged, against a live server (issue 12): the PyPI `metriport` SDK
(its pydantic models parse every answer) and the npm `@metriport/api-sdk` through tests/contract/sdk.mjs
(its zod schemas parse some answers; the rest are checked here against its TypeScript types: required
fields present, optional strings absent rather than null). Every webhook a receiver gets passes the npm
SDK's verifyWebhookSignature and parseWebhookResponse."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from metriport.client import Metriport
from metriport.commons import Address
from metriport.core.api_error import ApiError
from metriport.medical import Contact, PersonalIdentifier_Ssn

from docqueries.backends.sandbox import sandbox_documents
from tests.helpers.api import Api
from tests.helpers.bulk import csv_bytes, person, wait_final
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

HERE = Path(__file__).parent
ADDRESS = {"addressLine1": "2 Oak Ave", "city": "Austin", "state": "TX", "zip": "78701", "country": "USA"}


def node(command: dict) -> dict:
    """One call of the npm SDK; fails loudly when node or the pinned SDK is missing (never skips)."""
    assert shutil.which("node"), "node is required for the contract tests"
    assert (HERE / "node_modules" / "@metriport" / "api-sdk").is_dir(), "run: npm ci --prefix tests/contract"
    done = subprocess.run(
        ["node", str(HERE / "sdk.mjs")], input=json.dumps(command), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def npm(live_server, api_key: str, method: str, *args):
    answer = node({"method": method, "args": list(args), "baseAddress": live_server.url, "apiKey": api_key})
    assert answer["ok"], (method, answer["error"])
    return answer["result"]


def assert_typed(value: dict, *, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    """A TypeScript interface's contract: required fields present and not null, optional ones absent or set."""
    missing = [name for name in required if value.get(name) is None]
    assert not missing, f"required fields missing or null: {missing} in {value}"
    nulls = [name for name in optional if name in value and value[name] is None]
    assert not nulls, f"optional fields sent as null (the SDK types them `string | undefined`): {nulls}"


# The npm SDK's facility schema has no `oid` (zod drops it); the Python SDK requires it (checked there).
FACILITY_REQUIRED = ("id", "name", "npi", "active", "address")
ADDRESS_REQUIRED = ("addressLine1", "city", "state", "zip", "country")


def test_facilities_with_the_python_sdk(live_server, tenant):
    client = Metriport(api_key=tenant.api_key, base_url=live_server.url)
    created = client.medical.facility.create(
        name="North Clinic",
        npi="1234567893",
        tin="12-3456789",
        address=Address(address_line_1="2 Oak Ave", city="Austin", state="TX", zip="78701", country="USA"),
    )
    assert created.oid and created.id and created.tin == "12-3456789"
    assert client.medical.facility.get(created.id).oid == created.oid
    updated = client.medical.facility.update(
        created.id,
        name="North Clinic 2",
        npi="1234567893",
        tin=None,  # sent as null, as active=None is: Metriport's SDK types both nullable
        active=None,
        address=Address(address_line_1="3 Oak Ave", city="Austin", state="TX", zip="78701", country="USA"),
    )
    assert updated.name == "North Clinic 2" and updated.active is True and updated.tin == ""
    south = client.medical.facility.create(
        name="South",
        npi="1245319599",
        tin=None,
        # addressLine2 and country sent as null too
        address=Address(
            address_line_1="4 Elm St", address_line_2=None, city="Austin", state="TX", zip="78701", country=None
        ),
    )
    assert south.tin == "" and south.address.country == "USA"
    listed = client.medical.facility.list()
    assert {f.id for f in listed.facilities} == {str(tenant.facility.id), created.id, south.id}


def test_facilities_with_the_npm_sdk(live_server, tenant):
    created = npm(
        live_server, tenant.api_key, "createFacility", {"name": "North", "npi": "1234567893", "address": ADDRESS}
    )
    assert_typed(created, required=FACILITY_REQUIRED, optional=("tin",))
    assert_typed(created["address"], required=ADDRESS_REQUIRED, optional=("addressLine2",))
    got = npm(live_server, tenant.api_key, "getFacility", created["id"])
    assert got["id"] == created["id"] and got["eTag"] == created["eTag"]
    updated = npm(live_server, tenant.api_key, "updateFacility", {**created, "name": "North 2", "address": ADDRESS})
    assert updated["name"] == "North 2"
    # One facility without a second address line (the create_facility command makes such) must not break
    # the whole list.
    listed = npm(live_server, tenant.api_key, "listFacilities")
    assert {f["id"] for f in listed} == {str(tenant.facility.id), created["id"]}
    for facility in listed:
        assert_typed(facility, required=FACILITY_REQUIRED, optional=("tin",))


def test_settings_and_webhooks_with_the_npm_sdk(live_server, tenant, receiver, pipeline, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    updated = npm(live_server, tenant.api_key, "updateSettings", receiver.url)
    assert_typed(updated, required=("id", "webhookUrl", "webhookKey"))
    got = npm(live_server, tenant.api_key, "getSettings")
    assert got == updated
    status = npm(live_server, tenant.api_key, "getWebhookStatus")
    assert isinstance(status["webhookEnabled"], bool)
    assert isinstance(status["webhookRequestsProcessing"], int) and isinstance(status["webhookRequestsFailed"], int)
    assert "webhookStatusDetail" not in status or isinstance(status["webhookStatusDetail"], str)

    # A bulk import: processing, completed, and document-download webhooks carrying its patients, several to
    # a message (Metriport's `patients` array).
    settings.WEBHOOK_DOCUMENT_BATCH_SIZE = 2
    api = Api(live_server.url, tenant.api_key)
    people = [person("Ann"), person("Bob", ext="MRN-2"), person("Cy", ext="MRN-3")]
    final = api.run(csv_bytes(people))
    assert final["status"] == "completed"

    def types() -> list[str]:
        return [r.json()["meta"]["type"] for r in receiver.received if r.body]

    def notified() -> int:
        documents = [r.json() for r in receiver.received if r.body and b'"medical.document-download"' in r.body]
        return sum(len(payload["patients"]) for payload in documents)

    wait_until(lambda: notified() == 3, message="every patient's document webhook")
    assert types().count("medical.document-download") < 3  # batched
    wait_until(lambda: types().count("medical.bulk-patient-create") == 2, message="bulk webhooks")
    for received in receiver.received:
        if not received.body:
            continue
        answer = node(
            {
                "method": "webhook",
                "key": updated["webhookKey"],
                "body": received.body.decode(),
                "signature": received.headers.get("x-metriport-signature"),
            }
        )
        assert answer["ok"], answer["error"]
        assert answer["result"]["verified"] is True
        assert answer["result"]["parsed"]["meta"]["type"] == received.json()["meta"]["type"]


def test_patients_and_documents_with_both_sdks(live_server, tenant, pipeline, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    final = Api(live_server.url, tenant.api_key).run(csv_bytes([person("Ann", ext="MRN-1")]))
    request_id = final["requestId"]
    wait_final(request_id)
    client = Metriport(api_key=tenant.api_key, base_url=live_server.url)
    (patient,) = client.medical.patient.list().patients
    assert patient.first_name == "Ann" and patient.external_id == "MRN-1"
    assert client.medical.patient.get(patient.id).id == patient.id
    status = client.medical.document.get_query_status(patient_id=patient.id)
    assert status.download is not None and status.download.status == "completed"

    listed = npm(live_server, tenant.api_key, "listPatients", {"facilityId": str(tenant.facility.id)})
    (entry,) = listed["patients"]
    assert_typed(
        entry,
        required=("id", "facilityIds", "firstName", "lastName", "dob", "genderAtBirth", "address"),
        optional=("externalId",),
    )
    got = npm(live_server, tenant.api_key, "getPatient", patient.id)
    assert got["id"] == patient.id
    query = npm(live_server, tenant.api_key, "getDocumentQueryStatus", patient.id)
    assert query["download"]["status"] == "completed"


PATIENT_REQUIRED = ("id", "facilityIds", "firstName", "lastName", "dob", "genderAtBirth", "address")
DEMOGRAPHICS = {
    "firstName": "Ann",
    "lastName": "Doe",
    "dob": "1980-01-02",
    "genderAtBirth": "F",
    "address": [ADDRESS],
    "contact": [{"phone": "5125550100"}],
}


def with_documents(create):
    """The sandbox finds 0 to 3 documents, by patient id: creates patients (`create(name)`) until one will have
    some, so the document answers are never checked vacuously."""
    for letter in "abcdefghijklmnopqrstuvwxyz":
        patient = create(f"Doc{letter}")
        patient_id = patient["id"] if isinstance(patient, dict) else patient.id
        if sandbox_documents(patient_id):
            return patient
    raise AssertionError("26 patients without sandbox documents")


def assert_patient(value: dict) -> None:
    assert_typed(value, required=PATIENT_REQUIRED, optional=("externalId", "eTag"))
    for address in value["address"]:
        assert_typed(address, required=ADDRESS_REQUIRED, optional=("addressLine2",))
    for contact in value.get("contact") or []:
        assert_typed(contact, required=(), optional=("phone", "email"))


def test_single_patient_api_with_the_python_sdk(live_server, tenant, pipeline, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    client = Metriport(api_key=tenant.api_key, base_url=live_server.url)
    facility_id = str(tenant.facility.id)
    address = [Address(address_line_1="2 Oak Ave", city="Austin", state="TX", zip="78701", country="USA")]
    person_fields = {"first_name": "Ann", "last_name": "Doe", "dob": "1980-01-02", "gender_at_birth": "F"}
    created = client.medical.patient.create(
        facility_id=facility_id,
        address=address,
        contact=[Contact(phone="(512) 555-0100", email="ann@example.com")],
        personal_identifiers=[PersonalIdentifier_Ssn(value="123-45-6789")],
        external_id="MRN-7",
        **person_fields,
    )
    assert created.id and created.external_id == "MRN-7" and created.facility_ids == [facility_id]
    again = client.medical.patient.create(facility_id=facility_id, address=address, **person_fields)
    assert again.id == created.id  # matched by the bulk rule, not a duplicate
    assert client.medical.patient.match(address=address, **person_fields).id == created.id
    updated = client.medical.patient.update(
        created.id, facility_id=facility_id, address=address, **{**person_fields, "last_name": "Smith"}
    )
    assert updated.last_name == "Smith"

    patient = with_documents(
        lambda name: client.medical.patient.create(
            facility_id=facility_id, address=address, **{**person_fields, "first_name": name}
        )
    )
    query = client.medical.document.start_query(patient_id=patient.id, facility_id=facility_id)
    assert query.download is not None and query.download.status in ("processing", "completed")
    wait_until(
        lambda: client.medical.document.get_query_status(patient_id=patient.id).download.status == "completed",
        message="the sandbox answers the Document Query",
    )
    documents = client.medical.document.list(patient_id=patient.id).documents
    assert {d.id for d in documents} == {d["id"] for d in sandbox_documents(patient.id)}

    client.medical.patient.delete(created.id, facility_id=facility_id)
    with pytest.raises(ApiError) as gone:
        client.medical.patient.get(created.id)
    assert gone.value.status_code == 404

    spare = client.medical.facility.create(
        name="Spare", npi="1234567893", address=Address(address_line_1="1 A St", city="Austin", state="TX", zip="78701")
    )
    client.medical.facility.delete(spare.id)
    assert {f.id for f in client.medical.facility.list().facilities} == {facility_id}


def test_single_patient_api_with_the_npm_sdk(live_server, tenant, pipeline, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    facility_id = str(tenant.facility.id)
    created = npm(live_server, tenant.api_key, "createPatient", {**DEMOGRAPHICS, "externalId": "MRN-8"}, facility_id)
    assert_patient(created)
    assert npm(live_server, tenant.api_key, "getPatient", created["id"])["eTag"] == created["eTag"]
    assert npm(live_server, tenant.api_key, "matchPatient", DEMOGRAPHICS)["id"] == created["id"]
    assert npm(live_server, tenant.api_key, "matchPatient", {**DEMOGRAPHICS, "firstName": "Zed"}) == {"undefined": True}
    assert npm(live_server, tenant.api_key, "getPatientByExternalId", "MRN-8")["id"] == created["id"]

    updated = npm(live_server, tenant.api_key, "updatePatient", {**created, "lastName": "Smith"}, facility_id)
    assert_patient(updated)
    assert updated["lastName"] == "Smith" and updated["eTag"] != created["eTag"]
    # The SDK sends the eTag it was given as If-Match: a stale one is refused.
    stale = node(
        {
            "method": "updatePatient",
            "args": [{**created, "lastName": "Jones"}, facility_id],
            "baseAddress": live_server.url,
            "apiKey": tenant.api_key,
        }
    )
    assert not stale["ok"] and stale["error"]["status"] == 412

    opted = npm(live_server, tenant.api_key, "updatePatientHieOptOut", created["id"], True)
    assert opted["id"] == created["id"] and opted["hieOptOut"] is True and isinstance(opted["message"], str)
    npm(live_server, tenant.api_key, "updatePatientHieOptOut", created["id"], False)

    second = npm(live_server, tenant.api_key, "createPatient", {**DEMOGRAPHICS, "firstName": "Bea"}, facility_id)
    page = npm(live_server, tenant.api_key, "listPatients", {"pagination": {"fromItem": second["id"], "count": 1}})
    assert [p["id"] for p in page["patients"]] == [second["id"]]
    following = npm(live_server, tenant.api_key, "listPatientsPage", page["meta"]["nextPage"])
    assert [p["id"] for p in following["patients"]] == [created["id"]] and "nextPage" not in following["meta"]

    # The sandbox gives a patient 0 to 3 documents by a hash of its (random) id: the shapes of documents are
    # checked on a patient that has some.
    with_documents, attempt = created, 0
    while not sandbox_documents(with_documents["id"]):
        attempt += 1
        assert attempt < 20, "the sandbox gives most patients documents"
        with_documents = npm(
            live_server, tenant.api_key, "createPatient", {**DEMOGRAPHICS, "firstName": f"Doc{attempt}"}, facility_id
        )
    query = npm(live_server, tenant.api_key, "startDocumentQuery", with_documents["id"], facility_id)  # zod-parsed
    assert query["download"]["status"] in ("processing", "completed")
    wait_until(
        lambda: (
            npm(live_server, tenant.api_key, "getDocumentQueryStatus", with_documents["id"])["download"]["status"]
            == "completed"
        ),
        message="the sandbox answers the Document Query",
    )
    fhir = npm(live_server, tenant.api_key, "listDocuments", with_documents["id"])
    assert {d["id"] for d in fhir["documents"]} == {d["id"] for d in sandbox_documents(with_documents["id"])}
    assert all(d["resourceType"] == "DocumentReference" for d in fhir["documents"])
    dtos = npm(live_server, tenant.api_key, "listDocumentsAsDTO", with_documents["id"])
    dto_list = dtos["documents"] if isinstance(dtos, dict) else dtos
    assert len(dto_list) == len(fhir["documents"])
    for document in dto_list:
        assert_typed(document, required=("id", "fileName", "mimeType"), optional=("description", "status", "indexed"))
    assert npm(live_server, tenant.api_key, "retryWebhookRequests") == {"undefined": True}

    in_use = node(
        {"method": "deleteFacility", "args": [facility_id], "baseAddress": live_server.url, "apiKey": tenant.api_key}
    )
    assert not in_use["ok"] and in_use["error"]["status"] == 409  # it still has patients
    latest = npm(live_server, tenant.api_key, "getPatient", created["id"])
    gone = npm(live_server, tenant.api_key, "deletePatient", created["id"], facility_id, latest["eTag"])
    assert gone == {"undefined": True}
    npm(live_server, tenant.api_key, "deletePatient", second["id"], facility_id)
    for left in npm(live_server, tenant.api_key, "listPatients")["patients"]:
        npm(live_server, tenant.api_key, "deletePatient", left["id"], facility_id)
    assert npm(live_server, tenant.api_key, "listPatients")["patients"] == []
    spare = npm(
        live_server, tenant.api_key, "createFacility", {"name": "Spare", "npi": "1234567893", "address": ADDRESS}
    )
    assert npm(live_server, tenant.api_key, "deleteFacility", spare["id"], spare["eTag"]) == {"undefined": True}
    assert [f["id"] for f in npm(live_server, tenant.api_key, "listFacilities")] == [facility_id]


COHORT_REQUIRED = ("id", "eTag", "name", "color", "purposeOfUse", "settings", "size")


def assert_cohort(value: dict) -> None:
    """CohortWithSizeResponseWithoutOverrides (@metriport/shared 18.x): no `overrides` in its settings."""
    assert_typed(value, required=COHORT_REQUIRED)
    assert isinstance(value["description"], str)
    monitoring = value["settings"]["monitoring"]
    assert set(monitoring) == {"adt", "hie", "pharmacy", "laboratory"} and "overrides" not in value["settings"]
    assert set(monitoring["pharmacy"]["schedule"]) == {"enabled", "frequency"}


def test_cohorts_with_the_npm_sdk(live_server, tenant, settings):
    """Every cohort method of the SDK, unchanged; creation (no SDK method) through the API as Metriport's."""
    settings.PUBLIC_BASE_URL = live_server.url
    created = requests.post(
        f"{live_server.url}/medical/v1/cohort",
        json={"name": "High Risk", "color": "red", "description": "Frequent monitoring"},
        headers={"x-api-key": tenant.api_key},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    cohort = created.json()
    assert_cohort(cohort)
    key, facility_id = tenant.api_key, str(tenant.facility.id)

    listed = npm(live_server, key, "listCohorts")
    assert [c["id"] for c in listed["cohorts"]] == [cohort["id"]]
    assert npm(live_server, key, "getCohort", cohort["id"]) == cohort

    updated = npm(live_server, key, "updateCohort", {"id": cohort["id"], "eTag": cohort["eTag"], "name": "Renamed"})
    assert_cohort(updated)
    assert updated["name"] == "Renamed" and updated["eTag"] != cohort["eTag"] and updated["color"] == "red"
    stale = node(
        {
            "method": "updateCohort",
            "args": [{"id": cohort["id"], "eTag": cohort["eTag"], "name": "Stale"}],
            "baseAddress": live_server.url,
            "apiKey": key,
        }
    )
    assert not stale["ok"] and stale["error"]["status"] == 412

    ann = npm(live_server, key, "createPatient", DEMOGRAPHICS, facility_id)
    bea = npm(live_server, key, "createPatient", {**DEMOGRAPHICS, "firstName": "Bea"}, facility_id)
    added = npm(live_server, key, "addPatientsToCohort", {"cohortId": cohort["id"], "patientIds": [ann["id"]]})
    assert isinstance(added["message"], str) and added["cohort"]["size"] == 1
    assert_cohort(added["cohort"])
    everyone = npm(live_server, key, "addPatientsToCohort", {"cohortId": cohort["id"], "allPatients": True})
    assert everyone["cohort"]["size"] == 2

    page = npm(live_server, key, "listPatientsInCohort", {"id": cohort["id"], "pagination": {"count": 1}})
    assert len(page["patients"]) == 1 and "nextPage" in page["meta"]
    assert_patient(page["patients"][0])
    rest = npm(live_server, key, "getCohortPatientsPage", page["meta"]["nextPage"])
    assert {p["id"] for p in page["patients"] + rest["patients"]} == {ann["id"], bea["id"]}

    removed = npm(live_server, key, "removePatientsFromCohort", {"cohortId": cohort["id"], "patientIds": [bea["id"]]})
    assert isinstance(removed["message"], str) and removed["cohort"]["size"] == 1

    other = requests.post(
        f"{live_server.url}/medical/v1/cohort", json={"name": "Other"}, headers={"x-api-key": key}, timeout=30
    ).json()
    joined = npm(live_server, key, "addPatientToCohorts", bea["id"], [other["id"]])
    assert [c["id"] for c in joined["cohorts"]] == [other["id"]]
    for value in joined["cohorts"]:
        assert_cohort(value)
    of_ann = npm(live_server, key, "listCohortsForPatient", ann["id"])
    assert [c["name"] for c in of_ann["cohorts"]] == ["Renamed"]

    in_use = node({"method": "deleteCohort", "args": [cohort["id"]], "baseAddress": live_server.url, "apiKey": key})
    assert not in_use["ok"] and in_use["error"]["status"] == 400  # Metriport's rule: remove its patients first
    npm(live_server, key, "removePatientsFromCohort", {"cohortId": cohort["id"], "allPatients": True})
    assert npm(live_server, key, "deleteCohort", cohort["id"]) == {"undefined": True}
    assert [c["id"] for c in npm(live_server, key, "listCohorts")["cohorts"]] == [other["id"]]
