"""/metrics (SPEC §12): Prometheus text with our counters (HTTP requests by route pattern and status, bulk
requests by status, rows processed, Document Queries, webhook outcomes, pending work and its oldest age,
broker queue depths); route labels are patterns, never paths with ids; METRICS_TOKEN guards it when set."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.bulk import csv_bytes, person, run_inline, submit

pytestmark = pytest.mark.django_db


def scrape(client: Client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_metrics_count_requests_rows_queries_and_pending_work(api, tenant):
    request = submit(tenant, csv_bytes([person("Ann"), person("Bob", dob="bad")]))
    run_inline(request.id)
    patient_id = api.get("/medical/v1/patient").json()["patients"][0]["id"]
    before = scrape(Client())
    route = "medical/v1/patient/<str:patient_id>"
    key = ("metriport_bulk_http_requests_total", (("method", "GET"), ("route", route), ("status", "200")))
    assert api.get(f"/medical/v1/patient/{patient_id}").status_code == 200
    assert api.get("/medical/v1/patient/not-a-patient").status_code == 404
    figures = scrape(Client())
    assert figures[key] == before.get(key, 0) + 1
    missing = ("metriport_bulk_http_requests_total", (("method", "GET"), ("route", route), ("status", "404")))
    assert figures[missing] >= 1
    assert not any(patient_id in str(labels) for _, labels in figures)  # ids never become labels
    assert figures[("metriport_bulk_bulk_requests", (("status", "completed"),))] == 1
    assert figures[("metriport_bulk_bulk_requests", (("status", "waiting"),))] == 0
    assert figures[("metriport_bulk_rows_processed_total", ())] == 2
    assert figures[("metriport_bulk_document_queries", (("status", "completed"),))] == 1
    assert figures[("metriport_bulk_pending_work", (("kind", "chunks"),))] == 0
    assert figures[("metriport_bulk_oldest_pending_age_seconds", (("kind", "document_queries"),))] == 0
    assert any(name == "metriport_bulk_queue_depth" for name, _ in figures)


def test_pending_work_shows_its_oldest_age(tenant):
    from datetime import timedelta

    from django.utils import timezone

    from docqueries.models import DocumentQuery

    request = submit(tenant, csv_bytes([person("Ann")]))
    run_inline(request.id)
    DocumentQuery.objects.update(status="processing", next_attempt_at=timezone.now() - timedelta(minutes=5))
    figures = scrape(Client())
    assert figures[("metriport_bulk_pending_work", (("kind", "document_queries"),))] == 1
    assert figures[("metriport_bulk_oldest_pending_age_seconds", (("kind", "document_queries"),))] >= 300


def test_metrics_token(settings):
    settings.METRICS_TOKEN = "s3cret"
    refused = Client().get("/metrics")
    assert refused.status_code == 401 and refused.json()["name"] == "UnauthorizedError"
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert scrape(Client(), HTTP_AUTHORIZATION="Bearer s3cret")
    assert Client().post("/metrics").status_code == 405
