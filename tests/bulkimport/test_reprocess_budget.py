"""A reprocess of a completed import starts Document Queries (billable): it is checked against the customer's
budget as an import is, with the queries it would newly start (a patient queried for the request already, or
within the re-query window, is not queried again). Over a cap it is refused with the reason (ids and counts
only) and changes nothing: the request stays completed, its rows, counts, chunks and result file as they were,
no query is started. A dry run's reprocess starts none and a resume is no new start: neither is checked."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from bulkimport import services
from bulkimport.models import BulkChunk, BulkPhase, BulkRequest, BulkRow, BulkRowError, BulkStatus, RowStatus
from docqueries.models import DocumentQuery, QueryStatus
from docqueries.services import budget_set
from metriport_bulk.lib import storage
from patients.models import Patient
from patients.services import customer_budget_lock
from tests.helpers.api import patient_through_api
from tests.helpers.bulk import answer_document_queries, csv_bytes, person, result_rows, run_inline, sample_bytes, submit
from tests.helpers.threads import db_thread

pytestmark = pytest.mark.django_db(transaction=True)

BODY = sample_bytes(40, invalid_ratio=0.1, seed=5)
BROKEN = 4
# The columns of the sample file that hold PHI: none of their cells may show in a refusal.
PHI_COLUMNS = ("firstName", "lastName", "dob", "addressLine1", "city", "zip", "phone-1", "email-1", "ssn")


def import_with_a_normalizer_bug(tenant, body: bytes = BODY, *, broken: list[int] | None = None) -> BulkRequest:
    """A completed import during which a bug failed valid rows at parse (the rows numbered `broken`, else the
    first BROKEN valid ones): they got no patient and no query, the request's other rows did."""
    request = submit(tenant, body)
    services.bulk_request_parse(request_id=request.id)
    pending = BulkRow.objects.filter(request_id=request.id, status=RowStatus.PENDING).order_by("number")
    numbers = broken if broken is not None else list(pending.values_list("number", flat=True)[:BROKEN])
    pending.filter(number__in=numbers).update(status=RowStatus.FAILED, reason="bug")
    run_inline(request.id)  # parse has run: the rest of the pipeline
    request.refresh_from_db()
    assert request.status == BulkStatus.COMPLETED
    return request


def state(request_id) -> dict:
    """Everything of a request a refused reprocess must leave as it was, and the customer's queries."""
    request = BulkRequest.objects.filter(id=request_id).values().get()
    with storage.open_for_read(request["result_key"]) as stream:
        result = stream.read()
    return {
        "request": request,
        "rows": list(BulkRow.objects.filter(request_id=request_id).order_by("number").values()),
        "errors": sorted(
            BulkRowError.objects.filter(request_id=request_id).values_list("row_number", "code", "field", "message")
        ),
        "chunks": list(BulkChunk.objects.filter(request_id=request_id).order_by("index").values()),
        "result": result,
        "queries": sorted(DocumentQuery.objects.values_list("id", "status")),
        "patients": Patient.objects.count(),
    }


def assert_no_phi(text: str, request: BulkRequest) -> None:
    columns = [request.header.index(name) for name in PHI_COLUMNS if name in request.header]
    for raw in BulkRow.objects.filter(request_id=request.id).values_list("raw", flat=True):
        for position in columns:
            cell = raw[position].strip()
            assert len(cell) < 3 or cell.lower() not in text.lower(), f"PHI cell in {text!r}"


def refused(request: BulkRequest, *, failed_only: bool) -> str:
    with pytest.raises(services.ReprocessRefused) as caught:
        services.bulk_request_reprocess(request_id=request.id, failed_only=failed_only)
    reason = str(caught.value)
    assert (
        reason.startswith("Document Query budget: this reprocess would start") and "Nothing was reprocessed" in reason
    )
    assert_no_phi(reason, request)
    return reason


def open_queries(request: BulkRequest) -> int:
    return DocumentQuery.objects.filter(bulk_request_id=request.id, status=QueryStatus.PROCESSING).count()


@pytest.mark.parametrize("failed_only", [True, False], ids=["failed-only", "all"])
def test_over_the_per_import_cap_a_reprocess_is_refused_and_changes_nothing(broker, tenant, failed_only):
    request = import_with_a_normalizer_bug(tenant)
    queried = DocumentQuery.objects.filter(bulk_request_id=request.id).count()
    budget_set(customer_id=tenant.customer.id, per_request=BROKEN - 1, per_day=None)
    before = state(request.id)

    reason = refused(request, failed_only=failed_only)

    # All rows or the failed ones: only the broken rows' patients have no query of the request yet.
    assert f"would start {BROKEN} Document Queries" in reason and f"allows {BROKEN - 1} per import" in reason
    assert state(request.id) == before

    budget_set(customer_id=tenant.customer.id, per_request=BROKEN, per_day=None)  # exactly enough
    outcome = services.bulk_request_reprocess(request_id=request.id, failed_only=failed_only)
    assert outcome.startswith("re-validated")
    reopened = BulkRequest.objects.get(id=request.id)
    assert (reopened.status, reopened.phase) == (BulkStatus.PROCESSING, BulkPhase.DOCUMENTS)
    assert open_queries(request) == BROKEN
    assert reopened.document_queries_planned == queried + BROKEN  # the request's queries, old and new
    answer_document_queries(request.id)
    services.bulk_request_finish(request_id=request.id)
    assert BulkRequest.objects.get(id=request.id).status == BulkStatus.COMPLETED


def test_over_the_daily_cap_with_another_import_applying_a_reprocess_is_refused(broker, tenant):
    request = import_with_a_normalizer_bug(tenant)
    started_today = DocumentQuery.objects.filter(customer=tenant.customer).count()
    applying = submit(tenant, csv_bytes([person("Ann"), person("Bea")]))
    services.bulk_request_parse(request_id=applying.id)  # planned, its chunks not applied yet: 2 reserved
    applying.refresh_from_db()
    assert (applying.phase, applying.document_queries_planned) == (BulkPhase.APPLYING, 2)
    cap = started_today + 2 + BROKEN - 1
    budget_set(customer_id=tenant.customer.id, per_request=None, per_day=cap)
    before = state(request.id)

    reason = refused(request, failed_only=True)

    used = started_today + 2
    assert f"would start {BROKEN} Document Queries; {used} of the customer's {cap} for today (UTC)" in reason
    assert f"{BROKEN - 1} left" in reason and "after 00:00 UTC" in reason
    assert state(request.id) == before
    # The other import's queries start: they were counted already, so nothing changes.
    run_inline(applying.id)
    assert DocumentQuery.objects.filter(customer=tenant.customer).count() == used
    assert f"{used} of the customer's {cap}" in refused(request, failed_only=True)

    budget_set(customer_id=tenant.customer.id, per_request=None, per_day=cap + 1)
    services.bulk_request_reprocess(request_id=request.id, failed_only=True)
    assert open_queries(request) == BROKEN
    assert DocumentQuery.objects.filter(customer=tenant.customer).count() == cap + 1


def test_the_count_is_what_the_reprocess_would_start(broker, tenant, api):
    """Patients queried within the re-query window are not counted; once the window has passed they are, but
    by a reprocess of all rows only: one of the failed rows counts only the rows it would apply."""
    budget_set(customer_id=tenant.customer.id, per_request=None, per_day=None, requery_after_hours=24)
    patient_through_api(api, "Ann")
    patient_through_api(api, "Bea")  # both queried now, by the API
    rows = [person("Ann"), person("Bea"), person("Cy"), person("Di")]
    request = import_with_a_normalizer_bug(tenant, csv_bytes(rows), broken=[3])  # Cy's row
    words = [row["documentQuery"] for row in result_rows(request.id)]
    assert words == ["recently queried", "recently queried", "", "completed"]
    budget_set(customer_id=tenant.customer.id, per_request=0, per_day=None, requery_after_hours=24)

    # Cy's row, then Cy's alone: Ann and Bea were queried within the window, Di by this request.
    assert "would start 1 Document Queries" in refused(request, failed_only=False)
    assert "would start 1 Document Queries" in refused(request, failed_only=True)

    DocumentQuery.objects.filter(bulk_request_id__isnull=True).update(started_at=timezone.now() - timedelta(hours=25))
    budget_set(customer_id=tenant.customer.id, per_request=1, per_day=None, requery_after_hours=24)
    assert "would start 3 Document Queries" in refused(request, failed_only=False)  # Ann, Bea and Cy
    services.bulk_request_reprocess(request_id=request.id, failed_only=True)
    queried = DocumentQuery.objects.filter(bulk_request_id=request.id).values_list("patient__first_name", flat=True)
    assert sorted(queried) == ["Cy", "Di"]


def test_a_reprocess_that_starts_no_query_is_not_refused(broker, tenant):
    """Reprocessing all rows again: every patient has its query of the request already."""
    request = import_with_a_normalizer_bug(tenant, broken=[])
    budget_set(customer_id=tenant.customer.id, per_request=0, per_day=0)
    services.bulk_request_reprocess(request_id=request.id, failed_only=False)
    assert BulkRequest.objects.get(id=request.id).status == BulkStatus.COMPLETED
    assert open_queries(request) == 0


def test_a_dry_run_and_a_resume_are_not_checked(broker, tenant):
    budget_set(customer_id=tenant.customer.id, per_request=0, per_day=0)
    dry = submit(tenant, BODY, dry_run=True)
    run_inline(dry.id)
    BulkRow.objects.filter(request_id=dry.id, status=RowStatus.SUCCEEDED).update(status=RowStatus.FAILED)
    services.bulk_request_reprocess(request_id=dry.id, failed_only=True)  # starts no query
    assert BulkRequest.objects.get(id=dry.id).status == BulkStatus.COMPLETED

    budget_set(customer_id=tenant.customer.id, per_request=None, per_day=None)
    processing = submit(tenant, BODY)
    services.bulk_request_parse(request_id=processing.id)  # let through, then the budget is lowered
    budget_set(customer_id=tenant.customer.id, per_request=0, per_day=0)
    assert services.bulk_request_reprocess(request_id=processing.id).startswith("resumed")


def test_the_command_prints_the_refusal_and_exits_non_zero(broker, tenant):
    request = import_with_a_normalizer_bug(tenant)
    budget_set(customer_id=tenant.customer.id, per_request=1, per_day=None)
    before = state(request.id)
    with pytest.raises(CommandError, match=f"this reprocess would start {BROKEN} Document Queries"):
        call_command("reprocess_bulk_request", str(request.id), "--failed-only")
    assert state(request.id) == before


def test_a_check_waits_for_the_one_before_it_and_counts_what_it_let_through(broker, tenant):
    """Another import's check holds the customer's lock and has let its import through, not committed yet:
    the reprocess's check waits for it, then counts that import's queries as reserved."""
    request = import_with_a_normalizer_bug(tenant)
    started_today = DocumentQuery.objects.filter(customer=tenant.customer).count()
    budget_set(customer_id=tenant.customer.id, per_request=None, per_day=started_today + BROKEN)
    other = submit(tenant, csv_bytes([person("Ann")]))
    locked = threading.Event()

    def let_an_import_through() -> None:
        with transaction.atomic():
            customer_budget_lock(customer_id=tenant.customer.id)
            BulkRequest.objects.filter(id=other.id).update(
                status=BulkStatus.PROCESSING, phase=BulkPhase.APPLYING, document_queries_planned=1
            )
            locked.set()
            time.sleep(1.5)  # the reprocess re-validates and plans meanwhile, then waits for the lock

    thread = db_thread(let_an_import_through)
    thread.start()
    assert locked.wait(30)
    reason = refused(request, failed_only=True)
    thread.join()
    assert f"{started_today + 1} of the customer's {started_today + BROKEN}" in reason
    assert BulkRequest.objects.get(id=request.id).status == BulkStatus.COMPLETED
