"""The Document Query budget: the re-query window (a patient queried lately is not queried again by an
import, and says so in the result file), the caps' refusals (per import, per UTC day, a budget of zero), and
the admin page showing each customer's use."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from docqueries.models import DocumentQuery, DocumentQueryBudget
from docqueries.services import budget_overrun, budget_set, import_refusal_reason, queries_started_today
from patients.models import Patient
from tests.helpers.bulk import csv_bytes, person, result_rows, run_inline, submit

pytestmark = pytest.mark.django_db(transaction=True)


def budget_refusal(*, customer_id, would_start, reserved=0):
    """An import's refusal in the customer's words, or None (what bulkimport's import_budget_refusal gives)."""
    overrun = budget_overrun(customer_id=customer_id, would_start=would_start, reserved=reserved)
    return None if overrun is None else import_refusal_reason(overrun)


def run(tenant, rows):
    request = submit(tenant, csv_bytes(rows))
    run_inline(request.id)
    request.refresh_from_db()
    assert request.status == "completed", request.reason
    return request


def test_a_patient_queried_within_the_window_is_not_queried_again(tenant):
    budget_set(customer_id=tenant.customer.id, per_request=None, per_day=None, requery_after_hours=24)
    run(tenant, [person("Ann"), person("Bea")])
    assert DocumentQuery.objects.count() == 2
    DocumentQuery.objects.filter(patient__first_name="Bea").update(started_at=timezone.now() - timedelta(hours=25))
    again = run(tenant, [person("Ann"), person("Bea"), person("Cy")])
    words = {row["metriportId"]: row["documentQuery"] for row in result_rows(again.id)}
    ann, bea, cy = (Patient.objects.get(first_name=name).id for name in ("Ann", "Bea", "Cy"))
    assert words[str(ann)] == "recently queried"
    assert words[str(bea)] == "completed" and words[str(cy)] == "completed"
    assert DocumentQuery.objects.filter(bulk_request_id=again.id).count() == 2


def test_without_a_window_every_applied_patient_is_queried(tenant):
    run(tenant, [person("Ann")])
    again = run(tenant, [person("Ann")])
    assert DocumentQuery.objects.filter(bulk_request_id=again.id).count() == 1


def test_caps_refuse_with_a_reason(tenant, other_tenant):
    assert budget_refusal(customer_id=tenant.customer.id, would_start=10**6) is None  # no budget: no cap
    budget_set(customer_id=tenant.customer.id, per_request=5, per_day=None)
    assert budget_refusal(customer_id=tenant.customer.id, would_start=5) is None
    reason = budget_refusal(customer_id=tenant.customer.id, would_start=6)
    assert "would start 6 Document Queries" in reason and "allows 5 per import" in reason
    budget_set(customer_id=tenant.customer.id, per_request=None, per_day=3)
    run(tenant, [person("Ann"), person("Bea")])
    assert queries_started_today(customer_id=tenant.customer.id) == 2
    assert budget_refusal(customer_id=tenant.customer.id, would_start=1) is None
    reason = budget_refusal(customer_id=tenant.customer.id, would_start=2)
    assert "2 of your 3 for today (UTC) are started or planned, 1 left" in reason
    assert "3 of your 3" in budget_refusal(customer_id=tenant.customer.id, would_start=1, reserved=1)
    assert budget_refusal(customer_id=other_tenant.customer.id, would_start=100) is None  # per customer


def test_a_budget_of_zero_allows_only_imports_that_query_nobody(tenant):
    budget_set(customer_id=tenant.customer.id, per_request=0, per_day=0)
    assert budget_refusal(customer_id=tenant.customer.id, would_start=0) is None
    assert "allows 0 per import" in budget_refusal(customer_id=tenant.customer.id, would_start=1)


def test_a_start_of_no_query_is_never_over_a_cap(tenant):
    """The single-patient API is not capped: a day can be past its cap already. What starts no query (an
    import of opted-out rows, a reprocess that changes nothing) is let through all the same."""
    run(tenant, [person("Ann"), person("Bea")])
    budget_set(customer_id=tenant.customer.id, per_request=0, per_day=1)
    assert budget_refusal(customer_id=tenant.customer.id, would_start=0) is None
    budget_set(customer_id=tenant.customer.id, per_request=None, per_day=1)
    assert "2 of your 1 for today (UTC) are started or planned, 0 left" in budget_refusal(
        customer_id=tenant.customer.id, would_start=1
    )


def test_admin_shows_each_customers_use(tenant, django_user_model, client):
    budget_set(customer_id=tenant.customer.id, per_request=100, per_day=1000, requery_after_hours=12)
    run(tenant, [person("Ann"), person("Bea")])
    admin = django_user_model.objects.create_superuser("root", password="x" * 20)
    client.force_login(admin)
    page = client.get("/admin/docqueries/documentquerybudget/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "started today (utc)" in html.lower()
    assert '<td class="field-used_today">2</td>' in html and '<td class="field-used_30_days">2</td>' in html


@pytest.mark.parametrize("hours", [100_000_000, 2_000_000_000])
def test_admin_refuses_a_re_query_window_too_long_to_compute(tenant, django_user_model, client, hours):
    """A window reaching before year 1 made every import of the customer, its plan and its confirm raise
    OverflowError (now - timedelta(hours)): the admin form refuses it, and nothing is saved."""
    admin = django_user_model.objects.create_superuser("root", password="x" * 20)
    client.force_login(admin)
    form = {"customer": str(tenant.customer.id), "per_request": "", "per_day": "", "requery_after_hours": str(hours)}
    page = client.post("/admin/docqueries/documentquerybudget/add/", form)
    assert page.status_code == 200 and "Ensure this value is less than or equal to" in page.content.decode()
    assert not DocumentQueryBudget.objects.exists()
    accepted = client.post("/admin/docqueries/documentquerybudget/add/", {**form, "requery_after_hours": "87600"})
    assert accepted.status_code == 302
    run(tenant, [person("Ann")])  # the longest window allowed computes
