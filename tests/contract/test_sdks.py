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
from metriport.client import Metriport
from metriport.commons import Address

from tests.bulkimport.helpers import Api, csv_bytes, person, wait_final
from tests.waiting import wait_until

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
        address=Address(address_line_1="2 Oak Ave", city="Austin", state="TX", zip="78701", country="USA"),
    )
    assert created.oid and created.id
    assert client.medical.facility.get(created.id).oid == created.oid
    updated = client.medical.facility.update(
        created.id,
        name="North Clinic 2",
        npi="1234567893",
        address=Address(address_line_1="3 Oak Ave", city="Austin", state="TX", zip="78701", country="USA"),
    )
    assert updated.name == "North Clinic 2"
    listed = client.medical.facility.list()
    assert {f.id for f in listed.facilities} == {str(tenant.facility.id), created.id}


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

    # A bulk import: processing, completed, and one document-download webhook per patient.
    api = Api(live_server.url, tenant.api_key)
    final = api.run(csv_bytes([person("Ann"), person("Bob", ext="MRN-2")]))
    assert final["status"] == "completed"

    def types() -> list[str]:
        return [r.json()["meta"]["type"] for r in receiver.received if r.body]

    wait_until(lambda: types().count("medical.document-download") == 2, message="document webhooks")
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
