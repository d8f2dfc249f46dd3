"""The plan's figures beyond actions, through the HTTP API on both stores: `documentQueries` (what a confirm
would start under the budget's rule: a person once, no opted-out patient, the file's opt-outs included, no
patient queried within the re-query window), equal to what the confirm then starts; `facilities` (rows per
action of each facility a row goes to); both in the admin request page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bulkimport.models import BulkRequest
from docqueries.models import DocumentQuery
from docqueries.services import budget_set
from tests.helpers.api import bulk_run_and_get, bulk_through_api, patient_through_api
from tests.helpers.bulk import HEADER, csv_bytes, person
from tests.helpers.factories import make_facility

pytestmark = pytest.mark.django_db(transaction=True)


def test_document_queries_count_a_person_once_and_leave_out_opted_out_and_recently_queried(api, tenant):
    budget_set(customer_id=tenant.customer.id, per_request=None, per_day=None, requery_after_hours=24)
    patient_through_api(api, "Kay")  # queried just now: recently
    patient_through_api(api, "Oli", hieOptOut=True)  # opted out
    pat = patient_through_api(api, "Pat")["id"]
    DocumentQuery.objects.filter(patient_id=pat).update(started_at=timezone.now() - timedelta(hours=25))
    rows = [
        person("Kay"),
        person("Oli"),
        person("Pat"),  # queried 25 hours ago: counts
        person("Nia"),  # new: counts
        person("NIA"),  # the same person: not again
        person("Ann", opt_out="true"),  # the file opts her out
        person("Zed"),
        person("ZED", opt_out="yes"),  # a later row of Zed's opts him out
        person("Bob", dob="not a date"),  # invalid: nothing
    ]
    dry = bulk_through_api(api, csv_bytes(rows), dry_run=True)
    assert dry["plan"]["documentQueries"] == 2
    confirmed = api.post(f"/medical/v1/patient/bulk/{dry['requestId']}/confirm")
    assert confirmed.status_code == 200, confirmed.json()
    real = bulk_run_and_get(api, confirmed.json()["requestId"])
    assert real["status"] == "completed"
    assert real["plan"]["documentQueries"] == 2
    started = DocumentQuery.objects.filter(bulk_request_id=real["requestId"])
    assert sorted(started.values_list("patient__first_name", flat=True)) == ["Nia", "Pat"]
    assert real["documentQueries"]["total"] == 2


def test_document_queries_without_a_budget_count_every_person_not_opted_out(api):
    patient_through_api(api, "Kay")
    dry = bulk_through_api(api, csv_bytes([person("Kay"), person("Ann"), person("Bo", opt_out="true")]), dry_run=True)
    assert dry["plan"]["documentQueries"] == 2


def test_facilities_count_each_facilitys_rows_per_action(api, tenant):
    patient_through_api(api, "Kay")
    north = make_facility(tenant.customer, name="North", npi_body="222222222")
    own = str(tenant.facility.id)
    header = [*HEADER, "facilityId"]
    rows = [
        [*person("Kay"), ""],  # the request's facility: unchanged
        [*person("Ann"), str(north.id)],
        [*person("ANN"), str(north.id)],  # duplicate of Ann
        [*person("Bo"), ""],
        [*person("Cy"), "not-a-facility"],  # a row error: counted nowhere
    ]
    dry = bulk_through_api(api, csv_bytes(rows, header), dry_run=True, query=f"&facilityId={own}")
    assert dry["plan"]["facilities"] == {
        own: {"wouldCreate": 1, "wouldUpdate": 0, "unchanged": 1, "duplicate": 0},
        str(north.id): {"wouldCreate": 1, "wouldUpdate": 0, "unchanged": 0, "duplicate": 1},
    }
    real = bulk_through_api(api, csv_bytes(rows, header), query=f"&facilityId={own}")
    assert real["plan"]["facilities"][str(north.id)] == {
        "created": 1,
        "updated": 0,
        "unchanged": 0,
        "duplicate": 1,
        "drifted": 0,
    }
    assert real["plan"]["facilities"][own]["created"] == 1 and real["plan"]["facilities"][own]["unchanged"] == 1


def test_a_file_without_facility_column_has_one_facility(api, tenant):
    dry = bulk_through_api(api, csv_bytes([person("Ann")]), dry_run=True)
    assert dry["plan"]["facilities"] == {
        str(tenant.facility.id): {"wouldCreate": 1, "wouldUpdate": 0, "unchanged": 0, "duplicate": 0}
    }


def test_admin_request_page_shows_document_queries_and_facilities(api, tenant, django_user_model, client):
    dry = bulk_through_api(api, csv_bytes([person("Ann"), person("Bo", opt_out="true")]), dry_run=True)
    admin = django_user_model.objects.create_superuser("root", password="x" * 20)
    client.force_login(admin)
    page = client.get(f"/admin/bulkimport/bulkrequest/{dry['requestId']}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-action="documentQueries">Document Queries a confirm would start</td><td class="count">1<' in html
    assert 'id="bulk-plan-facilities"' in html and f'data-facility="{tenant.facility.id}"' in html
    assert BulkRequest.objects.get(id=dry["requestId"]).document_queries_planned == 1


def test_openapi_schema_describes_the_plans_figures(client):
    plan = client.get("/openapi.json").json()["components"]["schemas"]["Plan"]
    assert sorted(plan["required"]) == ["absentFromFile", "actions"]  # additions are optional: SDK readers unaffected
    assert plan["properties"]["documentQueries"]["type"] == "integer"
    assert plan["properties"]["facilities"]["additionalProperties"] == {"$ref": "#/components/schemas/PlanActions"}
