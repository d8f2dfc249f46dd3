"""Shared by the reliability tests: the reference run and the checks that a faulty run ended the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from bulkimport.models import BulkPhase, BulkRequest, BulkStatus
from bulkimport.services.plan import row_patient_id
from docqueries.models import DocumentQuery
from patients.models import Patient
from tests.helpers.bulk import result_rows

T = TypeVar("T")


def failing_on_call(original: Callable[..., T], call: int, error: BaseException) -> Callable[..., T]:
    """`original`, except that its `call`-th call raises `error` (a crash in the middle of a step)."""
    calls = 0

    def wrapped(*args: Any, **kwargs: Any) -> T:
        nonlocal calls
        calls += 1
        if calls == call:
            raise error
        return original(*args, **kwargs)

    return wrapped


def without_ids(rows: list[dict]) -> list[dict]:
    """Rows without what derives from the request's id (the patient id, and the sandbox's documents, which
    derive from the patient id) or names the tenant's own objects (its facility, a matched patient)."""
    ignored = ("metriportId", "documents", "facilityId", "matchedPatientId")
    return [{k: v for k, v in row.items() if k not in ignored} for row in rows]


def assert_ids_derived(request_id, rows: list[dict]) -> None:
    request = BulkRequest.objects.get(id=request_id)
    for number, row in enumerate(rows, start=1):
        if row["action"] == "created":
            assert row["metriportId"] == str(row_patient_id(request, number))


ROWS = 3_000
CHUNK = "150"


def assert_same_as_clean(request, tenant, clean_request, clean_tenant) -> None:
    final = BulkRequest.objects.get(id=request.id)
    assert final.status == BulkStatus.COMPLETED, (final.status, final.reason)
    rows, clean_rows = result_rows(request.id), result_rows(clean_request.id)
    assert len(rows) == ROWS
    assert without_ids(rows) == without_ids(clean_rows)
    assert_ids_derived(request.id, rows)
    for model in (Patient, DocumentQuery):
        assert (
            model.objects.filter(customer=tenant.customer).count()
            == model.objects.filter(customer=clean_tenant.customer).count()
        )


def applying_with_progress(request_id) -> bool:
    request = BulkRequest.objects.get(id=request_id)
    return request.phase == BulkPhase.APPLYING and request.successful > 0
