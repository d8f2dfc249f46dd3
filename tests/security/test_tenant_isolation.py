"""A customer never sees nor changes another customer's objects (SPEC §1): every endpoint taking an id
answers another customer's id with 404, exactly as an id that does not exist; endpoints without ids
(lists, webhook settings) show and touch only the caller's own data. Real HTTP, real pipeline."""

from __future__ import annotations

import time
import uuid

import pytest

from bulkimport.models import BulkRequest
from docqueries.models import DocumentQuery
from patients.models import Facility
from tests.helpers.api import Api
from tests.helpers.bulk import csv_bytes, person, read_result
from tests.helpers.receiver import Received, Receiver, Reply
from webhooks.models import MessageStatus, WebhookMessage

pytestmark = pytest.mark.django_db(transaction=True)

FACILITY_BODY = {
    "name": "Hijacked",
    "npi": "1234567893",
    "address": {"addressLine1": "9 Evil St", "city": "Austin", "state": "TX", "zip": "78701"},
}


def _id_forms(value: str) -> list[str]:
    """The spellings uuid.UUID accepts for one id: a lookup must scope every one of them by customer."""
    parsed = uuid.UUID(value)
    return [str(parsed), str(parsed).upper(), parsed.hex, f"{{{parsed}}}", f"urn:uuid:{parsed}"]


def _pong_but_fail_the_rest(item: Received) -> Reply:
    """A receiver that accepts URL registrations (answers pings) and fails every other delivery."""
    return Receiver._auto_reply(item) if b'"ping"' in item.body else Reply(status=500)


@pytest.fixture
def owned(customer_api, tenant, receiver) -> dict[str, str]:
    """The tenant's objects: a facility, a completed bulk request, a patient with a Document Query, and a
    webhook endpoint whose bulk messages keep failing (so retry/health have something to leak)."""
    assert (
        customer_api.session.post(
            f"{customer_api.base_url}/settings", json={"webhookUrl": f"{receiver.url}/hook"}, timeout=10
        ).status_code
        == 200
    )
    receiver.default = _pong_but_fail_the_rest
    final = customer_api.run(csv_bytes([person("Ann"), person("Bob")]))
    assert final["status"] == "completed", final
    patient_id = read_result(final["result"])[0]["metriportId"]
    deadline = time.monotonic() + 20
    while not WebhookMessage.objects.filter(customer=tenant.customer, failures__gt=0).exists():
        assert time.monotonic() < deadline, "the tenant's webhook messages never failed"
        time.sleep(0.1)
    assert DocumentQuery.objects.filter(patient_id=patient_id).exists()
    return {"facility": str(tenant.facility.id), "request": final["requestId"], "patient": patient_id}


def _get(api: Api, path: str, **params):
    return api.session.get(f"{api.base_url}{path}", params=params, timeout=10)


# name: (method, path, query parameters, JSON body, which owned object) with "{id}" replaced by the probed id.
ID_ENDPOINTS = {
    "facility GET": ("get", "/medical/v1/facility/{id}", {}, None, "facility"),
    "facility PUT": ("put", "/medical/v1/facility/{id}", {}, FACILITY_BODY, "facility"),
    "patient GET": ("get", "/medical/v1/patient/{id}", {}, None, "patient"),
    "patient list by facilityId": ("get", "/medical/v1/patient", {"facilityId": "{id}"}, None, "facility"),
    "bulk GET": ("get", "/medical/v1/patient/bulk/{id}", {}, None, "request"),
    "bulk POST with facilityId": ("post", "/medical/v1/patient/bulk", {"facilityId": "{id}"}, None, "facility"),
    "document query by patientId": ("get", "/medical/v1/document/query", {"patientId": "{id}"}, None, "patient"),
}


def _call(api: Api, endpoint: str, object_id: str):
    method, path, params, body, _ = ID_ENDPOINTS[endpoint]
    return api.session.request(
        method,
        f"{api.base_url}{path.format(id=object_id)}",
        params={key: value.format(id=object_id) for key, value in params.items()},
        json=body,
        timeout=10,
    )


@pytest.mark.parametrize("endpoint", list(ID_ENDPOINTS))
def test_another_customers_id_answers_404_like_an_unknown_id(endpoint, owned, customer_api, other_api, tenant):
    kind = ID_ENDPOINTS[endpoint][4]
    # The owner reaches the object through this very endpoint: the 404 below is the scoping, not a bad URL.
    own = _call(customer_api, endpoint, owned[kind])
    assert own.status_code == 200, (endpoint, own.status_code, own.text)
    facility_before = Facility.objects.values("name", "updated_at", "customer_id").get(id=owned["facility"])
    unknown_id = str(uuid.uuid4())
    for form, unknown_form in zip(_id_forms(owned[kind]), _id_forms(unknown_id), strict=True):
        response = _call(other_api, endpoint, form)
        unknown = _call(other_api, endpoint, unknown_form)
        assert response.status_code == 404 == unknown.status_code, (endpoint, form, response.status_code, response.text)
        # The same envelope as for an id that does not exist: nothing tells "exists elsewhere" from "unknown".
        body, expected = response.json(), unknown.json()
        assert {k: body[k] for k in ("status", "name", "title")} == {
            k: expected[k] for k in ("status", "name", "title")
        }
        assert body["detail"].replace(form, "<id>") == expected["detail"].replace(unknown_form, "<id>")
    # Nothing was changed or created on the owner's side by the other customer.
    assert Facility.objects.values("name", "updated_at", "customer_id").get(id=owned["facility"]) == facility_before
    assert BulkRequest.objects.filter(facility_id=owned["facility"]).exclude(customer=tenant.customer).count() == 0


def test_lists_show_only_the_callers_objects(owned, customer_api, other_api, other_tenant):
    other_final = other_api.run(csv_bytes([person("Zed")]))
    other_patient = read_result(other_final["result"])[0]["metriportId"]

    patients = _get(other_api, "/medical/v1/patient").json()["patients"]
    assert [p["id"] for p in patients] == [other_patient]
    facilities = _get(other_api, "/medical/v1/facility").json()["facilities"]
    assert [f["id"] for f in facilities] == [str(other_tenant.facility.id)]
    requests_ = _get(other_api, "/medical/v1/patient/bulk").json()["requests"]
    assert [r["requestId"] for r in requests_] == [other_final["requestId"]]
    # The bulk list filtered by the other customer's facility: the same 404 as an unknown id.
    by_foreign = _get(other_api, "/medical/v1/patient/bulk", facilityId=owned["facility"])
    by_unknown = _get(other_api, "/medical/v1/patient/bulk", facilityId=str(uuid.uuid4()))
    assert by_foreign.status_code == by_unknown.status_code == 404
    assert by_foreign.json()["name"] == by_unknown.json()["name"] == "NotFoundError"

    own_patients = {p["id"] for p in _get(customer_api, "/medical/v1/patient").json()["patients"]}
    assert owned["patient"] in own_patients and other_patient not in own_patients


def test_webhook_settings_health_and_retry_touch_only_the_callers_own(owned, customer_api, other_api, tenant, receiver):
    own_settings = _get(customer_api, "/settings").json()
    assert own_settings["webhookUrl"] == f"{receiver.url}/hook" and own_settings["webhookKey"]

    # The other customer sees its own (empty) settings: never the tenant's URL or signing key.
    other_settings = _get(other_api, "/settings")
    assert other_settings.status_code == 200
    other_body = other_settings.json()
    assert other_body["id"] != own_settings["id"]
    assert {k: other_body[k] for k in ("webhookUrl", "webhookKey")} == {"webhookUrl": None, "webhookKey": None}
    assert own_settings["webhookKey"] not in other_settings.text

    health = _get(other_api, "/settings/webhook").json()
    assert health["status"] == "not-configured"
    assert (health["pending"], health["failing"], health["failed"]) == (0, 0, 0)
    assert own_settings["webhookUrl"] not in str(health)

    before = dict(WebhookMessage.objects.filter(customer=tenant.customer).values_list("id", "failures"))
    retried = other_api.session.post(f"{other_api.base_url}/settings/webhook/retry", timeout=10)
    assert retried.status_code == 200 and retried.json() == {"retried": 0}
    # Later messages (Document Query webhooks) may appear meanwhile: compare the ones that existed before.
    after = WebhookMessage.objects.filter(customer=tenant.customer, id__in=list(before))
    assert after.count() == len(before)
    assert all(message.failures >= before[message.id] for message in after)
    assert after.filter(status=MessageStatus.PENDING, failures__gt=0).exists()

    # Setting the other customer's URL changes nothing of the tenant's.
    assert (
        other_api.session.post(
            f"{other_api.base_url}/settings", json={"webhookUrl": f"{receiver.url}/other"}, timeout=10
        ).status_code
        == 200
    )
    assert _get(customer_api, "/settings").json() == own_settings


def test_missing_or_wrong_key_is_401_on_every_endpoint(live_server, owned):
    anonymous = Api(live_server.url, "")
    del anonymous.session.headers["x-api-key"]
    forged = Api(live_server.url, "mbk_000000000000_" + "A" * 43)
    for endpoint in ID_ENDPOINTS:
        kind = ID_ENDPOINTS[endpoint][4]
        for client in (anonymous, forged):
            response = _call(client, endpoint, owned[kind])
            assert response.status_code == 401, (endpoint, response.status_code)
            assert response.json()["name"] == "UnauthorizedError"
