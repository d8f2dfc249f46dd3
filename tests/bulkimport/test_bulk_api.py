"""POST/GET of bulk requests: facilityId and dryRun rules, list filters, isolation."""

import pytest

from bulkimport.models import BulkRequest
from tests.helpers.factories import make_facility

pytestmark = pytest.mark.django_db


def test_facility_optional_when_only_one(api, tenant):
    response = api.post("/medical/v1/patient/bulk")
    assert response.status_code == 200, response.json()
    assert list(response.json()) == ["requestId", "facilityId", "status", "uploadUrl", "params", "createdAt"]
    assert response.json()["params"] == {"dryRun": False} and response.json()["createdAt"].endswith("Z")
    assert response.json()["facilityId"] == str(tenant.facility.id)
    assert BulkRequest.objects.get(id=response.json()["requestId"]).dry_run is False


def test_facility_required_when_several(api, tenant):
    make_facility(tenant.customer, name="Second", npi_body="222222222")
    response = api.post("/medical/v1/patient/bulk")
    assert response.status_code == 400
    assert "facilityId" in response.json()["detail"]
    assert not BulkRequest.objects.exists()


@pytest.mark.parametrize("facility_id", ["00000000-0000-0000-0000-000000000000", "garbage"])
def test_unknown_facility_is_404(api, facility_id):
    response = api.post(f"/medical/v1/patient/bulk?facilityId={facility_id}")
    assert response.status_code == 404 and response.json()["name"] == "NotFoundError"


def test_other_customers_facility_is_404(api, other_tenant):
    assert api.post(f"/medical/v1/patient/bulk?facilityId={other_tenant.facility.id}").status_code == 404


# Empty is the default, as absent is: the SPEC's route template `?facilityId=&dryRun=` sends it that way.
@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("", False)])
def test_dry_run_values(api, value, expected):
    response = api.post(f"/medical/v1/patient/bulk?dryRun={value}")
    assert response.status_code == 200 and response.json()["params"] == {"dryRun": expected}
    assert BulkRequest.objects.get(id=response.json()["requestId"]).dry_run is expected


# The query string's booleans are the words true and false: none of what DRF's BooleanField would read as one.
@pytest.mark.parametrize("value", ["yes", "1", "0", "on", "True", "TRUE", "null", "maybe"])
def test_bad_dry_run_is_400(api, value):
    response = api.post(f"/medical/v1/patient/bulk?dryRun={value}")
    assert response.status_code == 400
    assert response.json() == {
        "status": 400,
        "name": "BadRequestError",
        "title": "Bad request",
        "detail": 'dryRun: Must be "true" or "false".',
    }
    assert not BulkRequest.objects.exists()


def test_get_shape_and_list_filters(api, tenant):
    created = api.post("/medical/v1/patient/bulk").json()
    body = api.get(f"/medical/v1/patient/bulk/{created['requestId']}").json()
    assert set(body) == {
        "requestId",
        "facilityId",
        "status",
        "params",
        "dryRun",
        "reason",
        "createdAt",
        "startedAt",
        "finishedAt",
        "total",
        "processed",
        "successful",
        "failed",
        "documentQueries",
        "result",
        "invalid",
        "warnings",
    }
    assert body["status"] == "waiting" and body["result"] is None and body["total"] == 0
    assert body["invalid"] is None and body["warnings"] == []
    assert body["documentQueries"] == {"total": 0, "completed": 0, "failed": 0, "pending": 0}
    listed = api.get("/medical/v1/patient/bulk", {"status": "waiting", "facilityId": str(tenant.facility.id)}).json()
    assert [r["requestId"] for r in listed["requests"]] == [created["requestId"]]
    assert api.get("/medical/v1/patient/bulk", {"status": "completed"}).json()["requests"] == []
    assert api.get("/medical/v1/patient/bulk", {"status": "bogus"}).status_code == 400


def test_list_is_newest_first_and_paginated(api):
    ids = [api.post("/medical/v1/patient/bulk").json()["requestId"] for _ in range(3)]
    page = api.get("/medical/v1/patient/bulk", {"count": 2}).json()
    assert [r["requestId"] for r in page["requests"]] == ids[::-1][:2]
    assert page["meta"]["nextPage"]


def test_no_body_is_read(api):
    response = api.post("/medical/v1/patient/bulk", data="not json at all", content_type="text/plain")
    assert response.status_code == 200


def test_list_by_unknown_or_foreign_facility_is_404(api, other_tenant):
    for facility_id in (str(other_tenant.facility.id), "00000000-0000-0000-0000-000000000000", "garbage"):
        response = api.get("/medical/v1/patient/bulk", {"facilityId": facility_id})
        assert response.status_code == 404 and response.json()["name"] == "NotFoundError"


def test_get_reports_header_warnings(api, tenant):
    from tests.helpers.bulk import HEADER, csv_bytes, person, run_inline, submit

    request = submit(tenant, csv_bytes([[*person("Ann"), "x@example.com"]], [*HEADER, "email-0"]))
    run_inline(request.id)
    body = api.get(f"/medical/v1/patient/bulk/{request.id}").json()
    assert body["status"] == "completed"
    assert body["warnings"] == [
        "Column 11 (email-0) is not read: indexes run from 1 to 10, without leading zeros (e.g. email-1)."
    ]
