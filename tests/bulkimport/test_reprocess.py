"""Reprocess runs the pipeline's own steps (apply chunk by chunk, wait for the Document Queries, finish): a
reprocessed request's result equals a fresh import's of the same file, actions and queries included, whether
all rows or only the failed ones are reprocessed. The failure modes: rows re-applied reported `updated` for
the patients they created themselves, and a result written before the queries it started had ended."""

from __future__ import annotations

import uuid

import pytest

from bulkimport import services
from bulkimport.models import BulkPhase, BulkRequest, BulkRow, BulkStatus, RowStatus
from docqueries.backends.sandbox import sandbox_documents
from docqueries.models import DocumentQuery, QueryStatus
from patients.models import Patient
from tests.helpers.bulk import answer_document_queries, result_rows, run_inline, sample_bytes, submit
from tests.helpers.factories import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

BODY = sample_bytes(40, invalid_ratio=0.1, seed=5)
BROKEN = 4


def _import_with_a_normalizer_bug(body: bytes, *, dry_run: bool = False) -> tuple[BulkRequest, list[int]]:
    """An import during which a bug failed some valid rows at parse: they got no patient and no query."""
    request = submit(make_tenant("Buggy Health"), body, dry_run=dry_run)
    services.bulk_request_parse(request_id=request.id)
    pending = BulkRow.objects.filter(request_id=request.id, status=RowStatus.PENDING).order_by("number")
    broken = list(pending.values_list("number", flat=True)[:BROKEN])
    BulkRow.objects.filter(request_id=request.id, number__in=broken).update(status=RowStatus.FAILED, reason="bug")
    run_inline(request.id)  # parse has run: the rest of the pipeline
    assert BulkRequest.objects.get(id=request.id).status == BulkStatus.COMPLETED
    return request, broken


def _fresh_import(body: bytes, *, dry_run: bool = False) -> list[dict]:
    request = submit(make_tenant("Fresh Health"), body, dry_run=dry_run)
    run_inline(request.id)
    return result_rows(request.id)


def _outcomes(rows: list[dict]) -> list[dict]:
    """Every column but the patient ids (a patient created by a row has an id of its request's own), the
    document counts (the sandbox's answer depends on the id: checked against it here) and the ids of each
    tenant's own objects (its facility, a matched patient)."""
    for row in rows:
        if row["status"] == "failed" or row["action"] in ("created", "updated", "unchanged", "duplicate"):
            assert bool(row["metriportId"]) == (row["status"] == "successful")
        if row["documentQuery"] == "completed":
            assert row["documents"] == str(len(sandbox_documents(row["metriportId"])))
    ids = ("metriportId", "documents", "facilityId", "matchedPatientId")
    return [{name: value for name, value in row.items() if name not in ids} for row in rows]


@pytest.mark.parametrize("failed_only", [True, False], ids=["failed-only", "all"])
def test_a_reprocessed_request_ends_as_a_fresh_import_of_the_file(broker, failed_only):
    request, broken = _import_with_a_normalizer_bug(BODY)
    before = {row["status"] for row in result_rows(request.id) if row["reason"] == "bug"}
    assert before == {"failed"}

    outcome = services.bulk_request_reprocess(request_id=request.id, failed_only=failed_only)

    valid = BulkRow.objects.filter(request_id=request.id, status=RowStatus.SUCCEEDED).count()
    assert outcome.endswith(f"applied {BROKEN if failed_only else valid}")
    # The rows it applied started Document Queries: the request waits for them, as an import does.
    waiting = BulkRequest.objects.get(id=request.id)
    assert (waiting.status, waiting.phase) == (BulkStatus.PROCESSING, BulkPhase.DOCUMENTS)
    new_queries = DocumentQuery.objects.filter(bulk_request_id=request.id, status=QueryStatus.PROCESSING)
    assert new_queries.count() == BROKEN
    answer_document_queries(request.id)
    services.bulk_request_finish(request_id=request.id)
    done = BulkRequest.objects.get(id=request.id)
    assert done.status == BulkStatus.COMPLETED

    fresh = _fresh_import(BODY)
    assert _outcomes(result_rows(request.id)) == _outcomes(fresh)
    counts = ("total", "processed", "successful", "failed")
    assert [getattr(done, name) for name in counts] == [len(fresh), len(fresh)] + [
        sum(row["status"] == status for row in fresh) for status in ("successful", "failed")
    ]


def test_reprocessing_again_changes_nothing_and_completes_at_once(broker):
    """No row applied starts a new query (one per patient and request): the finish completes right away."""
    request, _ = _import_with_a_normalizer_bug(BODY)
    services.bulk_request_reprocess(request_id=request.id, failed_only=True)
    answer_document_queries(request.id)
    services.bulk_request_finish(request_id=request.id)
    first = result_rows(request.id)

    services.bulk_request_reprocess(request_id=request.id, failed_only=False)

    assert BulkRequest.objects.get(id=request.id).status == BulkStatus.COMPLETED
    assert result_rows(request.id) == first
    assert {row["action"] for row in first if row["status"] == "successful"} == {"created"}


def test_a_reprocessed_dry_run_ends_as_a_fresh_dry_run(broker):
    request, _ = _import_with_a_normalizer_bug(BODY, dry_run=True)
    services.bulk_request_reprocess(request_id=request.id, failed_only=True)
    assert BulkRequest.objects.get(id=request.id).status == BulkStatus.COMPLETED
    assert _outcomes(result_rows(request.id)) == _outcomes(_fresh_import(BODY, dry_run=True))


def test_a_row_whose_match_key_changed_finds_the_patient_it_created(broker):
    """A normalizer fix can change a row's match key while the patient the row created keeps the key it was
    created with (until `rekey_patients` runs): reprocessing all rows then finds no candidate for the row's new
    key, and its patient id (row_patient_id) is taken by that very patient. The row updates it, reported as
    created (as a re-run row is); the failure mode was a primary-key conflict on every retry of the chunk."""
    request, _ = _import_with_a_normalizer_bug(BODY)
    created = BulkRow.objects.filter(request_id=request.id, status=RowStatus.SUCCEEDED).order_by("number")
    moved = list(created.values_list("patient_id", flat=True)[:3])
    Patient.objects.filter(id__in=moved).update(match_key="key-of-an-older-normalizer")
    before = {row["metriportId"]: row for row in result_rows(request.id) if row["metriportId"] in map(str, moved)}

    services.bulk_request_reprocess(request_id=request.id, failed_only=False)
    answer_document_queries(request.id)
    services.bulk_request_finish(request_id=request.id)

    assert BulkRequest.objects.get(id=request.id).status == BulkStatus.COMPLETED
    after = {row["metriportId"]: row for row in result_rows(request.id) if row["metriportId"] in map(str, moved)}
    assert set(after) == set(before) and len(after) == 3
    assert {(row["status"], row["action"]) for row in after.values()} == {("successful", "created")}
    assert Patient.objects.filter(id__in=moved).count() == 3


def test_a_request_of_before_ordered_ids_keeps_its_uuid5_ids_when_reprocessed(broker):
    """A request created before the ordered patient ids (BulkRequest.patient_ids 1, set by the migration) has
    patients of uuid5 ids: reprocessed, its rows find them by those ids, create no second patient and still
    read `created`."""
    tenant = make_tenant("Before")
    request = submit(tenant, BODY)
    BulkRequest.objects.filter(id=request.id).update(patient_ids=1)
    run_inline(request.id)
    first = result_rows(request.id)
    created = [row["metriportId"] for row in first if row["action"] == "created"]
    assert created and {uuid.UUID(patient_id).version for patient_id in created} == {5}
    patients = Patient.objects.filter(customer=tenant.customer).count()

    services.bulk_request_reprocess(request_id=request.id, failed_only=False)

    assert BulkRequest.objects.get(id=request.id).status == BulkStatus.COMPLETED  # no new query: done at once
    assert result_rows(request.id) == first
    assert Patient.objects.filter(customer=tenant.customer).count() == patients
