"""Budget refusals through the HTTP API, on both stores: over the customer's per-import or per-day Document
Query cap, a confirm is a 409 with the reason before anything is created (the dry run stays confirmable), and
a real import ends `failed` with the reason (GET, the webhook without PHI) having written no patient. A
budget of zero refuses an import that would query anyone and lets through one that queries nobody (all
opted out, all recently queried). Imports still applying reserve their planned queries against the day."""

from __future__ import annotations

import orjson
import pytest

from bulkimport import services
from bulkimport.models import BulkChunk, BulkRequest
from docqueries.models import DocumentQuery
from docqueries.services import budget_set
from patients.models import Patient
from tests.helpers.api import bulk_run_and_get, bulk_through_api, patient_through_api
from tests.helpers.bulk import csv_bytes, person, submit
from webhooks.models import WebhookEndpoint, WebhookMessage

pytestmark = pytest.mark.django_db(transaction=True)

TWO = csv_bytes([person("Ann"), person("Bea")])


def bulk_webhooks(request_id) -> list[dict]:
    messages = WebhookMessage.objects.filter(
        request_id=str(request_id), message_type="medical.bulk-patient-create"
    ).order_by("created_at")
    return [orjson.loads(bytes(m.body))["bulkPatientCreate"] for m in messages]


def test_a_confirm_over_the_per_import_cap_is_a_409_and_the_dry_run_stays_confirmable(api, tenant):
    budget_set(customer_id=tenant.customer.id, per_request=1, per_day=None)
    dry = bulk_through_api(api, TWO, dry_run=True)
    assert dry["status"] == "completed" and dry["plan"]["documentQueries"] == 2
    refused = api.post(f"/medical/v1/patient/bulk/{dry['requestId']}/confirm")
    assert refused.status_code == 409
    body = refused.json()
    assert set(body) == {"status", "name", "title", "detail"} and body["status"] == 409
    assert "would start 2 Document Queries" in body["detail"] and "allows 1 per import" in body["detail"]
    assert "Ann" not in body["detail"]
    assert not BulkRequest.objects.filter(confirms_id=dry["requestId"]).exists()
    assert Patient.objects.count() == 0 and DocumentQuery.objects.count() == 0
    budget_set(customer_id=tenant.customer.id, per_request=2, per_day=None)
    confirmed = api.post(f"/medical/v1/patient/bulk/{dry['requestId']}/confirm")
    assert confirmed.status_code == 200, confirmed.json()
    assert bulk_run_and_get(api, confirmed.json()["requestId"])["status"] == "completed"
    assert Patient.objects.count() == 2


def test_a_real_import_over_the_per_import_cap_ends_failed_and_writes_no_patient(api, tenant):
    WebhookEndpoint.objects.create(customer=tenant.customer, url="http://127.0.0.1:9/hook", key="k" * 32)
    budget_set(customer_id=tenant.customer.id, per_request=1, per_day=None)
    answer = bulk_through_api(api, TWO)
    assert answer["status"] == "failed"
    assert "would start 2 Document Queries" in answer["reason"] and "Nothing was imported" in answer["reason"]
    assert Patient.objects.count() == 0 and DocumentQuery.objects.count() == 0
    assert not BulkChunk.objects.filter(request_id=answer["requestId"]).exists()
    hooks = bulk_webhooks(answer["requestId"])
    assert hooks[-1]["status"] == "failed" and hooks[-1]["reason"] == answer["reason"]
    assert all(b"Ann" not in bytes(m.body) and b"Doe" not in bytes(m.body) for m in WebhookMessage.objects.all())


def test_over_the_daily_cap_counts_the_days_queries(api, tenant):
    budget_set(customer_id=tenant.customer.id, per_request=None, per_day=3)
    assert bulk_through_api(api, TWO)["status"] == "completed"
    dry = bulk_through_api(api, csv_bytes([person("Cy"), person("Di")]), dry_run=True)
    refused = api.post(f"/medical/v1/patient/bulk/{dry['requestId']}/confirm")
    assert (
        refused.status_code == 409
        and "2 of your 3 for today (UTC) are started or planned, 1 left" in (refused.json()["detail"])
    )
    answer = bulk_through_api(api, csv_bytes([person("Cy"), person("Di")]))
    assert answer["status"] == "failed" and "1 left" in answer["reason"]
    assert bulk_through_api(api, csv_bytes([person("Cy")]))["status"] == "completed"  # exactly the last one
    assert Patient.objects.count() == 3


def test_a_budget_of_zero_refuses_any_query_and_allows_an_import_that_starts_none(api, tenant):
    budget_set(customer_id=tenant.customer.id, per_request=0, per_day=None, requery_after_hours=24)
    refused = bulk_through_api(api, csv_bytes([person("Ann")]))
    assert refused["status"] == "failed" and "allows 0 per import" in refused["reason"]
    assert Patient.objects.count() == 0
    opted_out = bulk_through_api(api, csv_bytes([person("Ann", opt_out="true"), person("Bea", opt_out="true")]))
    assert opted_out["status"] == "completed" and opted_out["plan"]["documentQueries"] == 0
    assert Patient.objects.filter(hie_opt_out=True).count() == 2
    budget_set(customer_id=tenant.customer.id, per_request=None, per_day=None, requery_after_hours=24)
    patient_through_api(api, "Kay")  # queried now, by the API
    budget_set(customer_id=tenant.customer.id, per_request=0, per_day=None, requery_after_hours=24)
    dry = bulk_through_api(api, csv_bytes([person("Kay"), person("Ann")]), dry_run=True)  # recently, opted out
    assert dry["plan"]["documentQueries"] == 0
    confirmed = api.post(f"/medical/v1/patient/bulk/{dry['requestId']}/confirm")
    assert confirmed.status_code == 200, confirmed.json()
    assert bulk_run_and_get(api, confirmed.json()["requestId"])["status"] == "completed"
    assert DocumentQuery.objects.count() == 1  # the API's own


def test_an_import_still_applying_reserves_its_planned_queries_against_the_day(api, tenant):
    budget_set(customer_id=tenant.customer.id, per_request=None, per_day=3)
    applying = submit(tenant, TWO)
    services.bulk_request_parse(request_id=applying.id)  # planned, its chunks not applied yet
    applying.refresh_from_db()
    assert (applying.phase, applying.document_queries_planned) == ("applying", 2)
    refused = bulk_through_api(api, csv_bytes([person("Cy"), person("Di")]))
    assert refused["status"] == "failed"
    assert (
        "0 of your 3" not in refused["reason"]
        and "2 of your 3 for today (UTC) are started or planned" in (refused["reason"])
    )
    answer = bulk_run_and_get(api, applying.id)
    assert answer["status"] == "completed" and DocumentQuery.objects.count() == 2
