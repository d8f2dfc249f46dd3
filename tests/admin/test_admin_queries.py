"""The admin stays fast on big requests: a fixed, small number of queries whatever the row count, indexed
lookups only, and no COUNT over a whole huge table."""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bulkimport import services
from bulkimport.models import BulkRequest, BulkRow, BulkRowError, BulkStatus, RowStatus
from metriport_bulk.admin_toolkit import EstimatedCountPaginator
from metriport_bulk.lib.bulkdb import copy_insert
from tests.helpers.bulk import HEADER, csv_bytes, person
from tests.helpers.factories import make_tenant
from webhooks.models import DeliveryAttempt, WebhookEndpoint, WebhookMessage
from webhooks.services import webhook_message_create

ROWS = 20_000
TARGET = 13_412  # "why did this row fail?"


def failing(number: int) -> bool:
    return number % 7 == 0 or number == TARGET


@pytest.fixture
def big_request(tenant) -> BulkRequest:
    """A completed request with 20,000 stored rows (about 1 in 7 failed), bulk-inserted like the parser does."""
    body = csv_bytes([person("Ann")])
    bulk = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    services.bulk_request_submit_file(request=bulk, stream=io.BytesIO(body), size=len(body))
    raw = person("Ann")
    normalized = {"firstName": "Ann", "lastName": "Doe", "dob": "1980-01-02", "genderAtBirth": "F", "addresses": []}
    copy_insert(
        BulkRow,
        ("request_id", "number", "raw", "normalized", "status", "reason", "action"),
        (
            (bulk.id, n, raw, None, RowStatus.FAILED, "Missing/invalid dob", "")
            if failing(n)
            else (bulk.id, n, raw, normalized, RowStatus.SUCCEEDED, "", "created")
            for n in range(1, ROWS + 1)
        ),
    )
    copy_insert(
        BulkRowError,
        ("request_id", "row_number", "code", "field", "message"),
        (
            (bulk.id, n, "invalid_dob" if n % 2 else "invalid_gender", "dob", "Missing/invalid dob")
            for n in range(1, ROWS + 1)
            if failing(n)
        ),
    )
    failed = sum(1 for n in range(1, ROWS + 1) if failing(n))
    BulkRequest.objects.filter(id=bulk.id).update(
        status=BulkStatus.COMPLETED,
        total=ROWS,
        processed=ROWS,
        successful=ROWS - failed,
        failed=failed,
        header=HEADER,  # stored by the parser, as the rows are
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE bulkimport_bulkrow")
        cursor.execute("ANALYZE bulkimport_bulkrowerror")
    return BulkRequest.objects.get(id=bulk.id)


def rows_url(**params) -> str:
    return reverse("admin:bulkimport_bulkrow_changelist") + "?" + "&".join(f"{k}={v}" for k, v in params.items())


def test_find_a_row_by_number_within_a_request(big_request, support_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(10) as captured:
        response = support_client.get(rows_url(request=big_request.id, q=TARGET))
    rows = list(response.context["cl"].result_list)
    assert [(row.number, row.status) for row in rows] == [(TARGET, RowStatus.FAILED)]
    lookup = [q["sql"] for q in captured.captured_queries if '"bulkimport_bulkrow"."number" =' in q["sql"]]
    assert lookup, "the search is an equality on (request, number)"
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + lookup[-1].replace("%", "%%"))
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "Index" in plan and "Seq Scan on bulkimport_bulkrow" not in plan, plan


def test_row_detail_of_a_big_request(big_request, support_client, django_assert_max_num_queries):
    row = BulkRow.objects.get(request=big_request, number=TARGET)
    support_client.get(reverse("admin:bulkimport_bulkrow_change", args=[row.id]))  # warm-up (sessions, content types)
    with django_assert_max_num_queries(8):
        response = support_client.get(reverse("admin:bulkimport_bulkrow_change", args=[row.id]))
    assert response.status_code == 200
    assert response.context["row_errors"] == [("invalid_gender", "dob", "Missing/invalid dob")]
    assert [cell.column for cell in response.context["cells"]] == HEADER


def test_rows_by_error_code_and_status(big_request, support_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        response = support_client.get(rows_url(request=big_request.id, error_code="invalid_dob"))
    expected = BulkRowError.objects.filter(request=big_request, code="invalid_dob").count()
    assert response.context["cl"].result_count == expected
    assert len(response.context["cl"].result_list) == 50
    with django_assert_max_num_queries(10):
        response = support_client.get(rows_url(request=big_request.id, status="failed", p=3))
    assert response.context["cl"].result_count == big_request.failed
    assert {row.status for row in response.context["cl"].result_list} == {RowStatus.FAILED}


def test_request_detail_of_a_big_request(big_request, support_client, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        response = support_client.get(reverse("admin:bulkimport_bulkrequest_change", args=[big_request.id]))
    assert {item["code"]: item["rows"] for item in response.context["error_counts"]} == {
        "invalid_dob": BulkRowError.objects.filter(request=big_request, code="invalid_dob").count(),
        "invalid_gender": BulkRowError.objects.filter(request=big_request, code="invalid_gender").count(),
    }


def test_unfiltered_big_lists_use_the_estimate(big_request, support_client, monkeypatch, django_assert_max_num_queries):
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 1_000)
    for name in ("bulkrow", "bulkrowerror"):
        with CaptureQueriesContext(connection) as captured, django_assert_max_num_queries(8):
            response = support_client.get(reverse(f"admin:bulkimport_{name}_changelist"))
        assert response.status_code == 200
        assert not [q for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
        assert response.context["cl"].paginator.estimated
        assert "about " in response.content.decode()
        assert (
            abs(response.context["cl"].result_count - (ROWS if name == "bulkrow" else big_request.failed)) < 0.1 * ROWS
        )


def test_request_list_has_no_n_plus_one(tenant, support_client, django_assert_max_num_queries):
    for i in range(30):
        services.bulk_request_create(
            customer=make_tenant(f"Customer {i}").customer, facility_id=None, dry_run=i % 2 == 0
        )
    with django_assert_max_num_queries(8):
        response = support_client.get(reverse("admin:bulkimport_bulkrequest_changelist"))
    assert len(response.context["cl"].result_list) == 30


def test_webhook_pages_have_no_n_plus_one(tenant, support_client, django_assert_max_num_queries):
    from django.utils import timezone

    WebhookEndpoint.objects.create(customer=tenant.customer, url="http://127.0.0.1:9/hook", key="k" * 32)
    messages = [
        webhook_message_create(customer_id=tenant.customer.id, message_type="ping", data={"ping": str(i)})
        for i in range(20)
    ]
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(message=m, number=n, started_at=timezone.now(), status_code=500, error="HTTP 500")
        for m in messages
        for n in range(1, 6)
    )
    with django_assert_max_num_queries(9):
        listing = support_client.get(reverse("admin:webhooks_webhookmessage_changelist"))
    assert len(listing.context["cl"].result_list) == 20
    with django_assert_max_num_queries(9):
        attempts = support_client.get(reverse("admin:webhooks_deliveryattempt_changelist"))
    assert len(attempts.context["cl"].result_list) == 100 or attempts.context["cl"].result_count == 100
    with django_assert_max_num_queries(9):
        detail = support_client.get(reverse("admin:webhooks_webhookmessage_change", args=[messages[0].id]))
    assert detail.content.decode().count("HTTP 500") >= 5
    assert WebhookMessage.objects.count() == 20


def test_patient_and_document_query_pages_have_no_n_plus_one(
    completed_request, support_client, django_assert_max_num_queries
):
    from docqueries.models import DocumentQuery
    from patients.models import Patient

    patients = list(Patient.objects.filter(customer=completed_request.customer)[:40])
    assert len(patients) >= 30
    DocumentQuery.objects.bulk_create(
        DocumentQuery(customer=completed_request.customer, patient=p, status="completed", documents=[{"id": "d"}])
        for p in patients
    )
    for url in (
        reverse("admin:patients_patient_changelist"),
        reverse("admin:patients_patient_changelist") + f"?customer__id__exact={completed_request.customer_id}",
        reverse("admin:docqueries_documentquery_changelist"),
    ):
        with django_assert_max_num_queries(10):  # a constant one more on a customer's list: its cohorts to filter by
            response = support_client.get(url)
        assert len(response.context["cl"].result_list) >= 30
    with django_assert_max_num_queries(10):
        detail = support_client.get(reverse("admin:patients_patient_change", args=[patients[0].id]))
    assert patients[0].first_name in detail.content.decode()
