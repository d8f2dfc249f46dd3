"""The hot path's statements reach their rows through an index on PostgreSQL (issue 24: cost linear in the
rows, not in the size of the tables). Each statement is EXPLAINed with sequential scans disabled: a plan that
still scans one of the big tables has no index serving its predicate, and that statement's cost would grow
with every request and patient ever stored. Run with `-s` to read the plans."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

import bulkimport.store.postgres as bulk_sql
import docqueries.store.postgres as docquery_sql
import patients.store.postgres as patient_sql
from bulkimport.models import BulkChunk, BulkPhase, BulkRow, BulkStatus, ChunkStatus
from bulkimport.services.apply import _fairest_pending_chunk
from bulkimport.services.parse import waiting_elsewhere
from bulkimport.services.plan import absent_patients
from docqueries.models import DocumentQuery, QueryStatus
from metriport_bulk.lib.bulkdb import due_by
from patients.models import Patient, PatientFacility
from tests.helpers.plans import explained
from webhooks.models import WebhookMessage

pytestmark = [pytest.mark.real_services, pytest.mark.django_db]

BIG_TABLES = ("bulkimport_bulkrow", "bulkimport_bulkchunk", "patients_patient", "docqueries_documentquery")


def assert_indexed(name: str, plan: str) -> None:
    print(f"\n-- {name}\n{plan}")
    scanned = [table for table in BIG_TABLES if f"Seq Scan on {table}" in plan]
    assert not scanned, f"{name}: no index serves the predicate on {scanned}:\n{plan}"


@pytest.fixture(autouse=True)
def no_seqscan() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")


def test_the_plans_statements_use_indexes(monkeypatch):
    request_id = uuid.uuid4()
    with explained(monkeypatch, bulk_sql) as plans:
        bulk_sql.plan_rows(request_id, after=2000, limit=2000)
        bulk_sql.row_zips(request_id, [(7, 2001), (9, 3999)])
    for name, plan in zip(("plan rows", "row zips"), plans, strict=True):
        assert_indexed(name, plan)


def test_a_chunks_statements_use_indexes(monkeypatch):
    request_id, customer_id = uuid.uuid4(), uuid.uuid4()
    with explained(monkeypatch, bulk_sql) as plans:
        bulk_sql.pending_rows(request_id, first=2001, last=4000, limit=2000)
        # One row as apply_rows passes it: (id, action, patient, then whatever the row records of its match).
        row = (1, "created", uuid.uuid4(), None, "")
        bulk_sql.mark_applied(request_id, [row], (2001, 4000))
    with explained(monkeypatch, patient_sql) as patient_plans:
        patient_sql.match_candidates(customer_id, ["smith|john|1980-01-01|M"])
    for name, plan in zip(("pending rows", "mark applied", "match candidates"), plans + patient_plans, strict=True):
        assert_indexed(name, plan)


def explain(queryset: QuerySet[Any]) -> str:
    return queryset.explain()


def test_the_request_level_probes_use_indexes():
    request_id = uuid.uuid4()
    probes = {
        "fairest pending chunk": BulkChunk.objects.filter(
            status=ChunkStatus.PENDING, request__status=BulkStatus.PROCESSING, request__phase=BulkPhase.APPLYING
        ).order_by("index", "id")[:1],
        "chunks left": BulkChunk.objects.filter(request_id=request_id, status=ChunkStatus.PENDING)[:1],
        "queries open": DocumentQuery.objects.filter(bulk_request_id=request_id, status=QueryStatus.PROCESSING)[:1],
        "final counts": BulkRow.objects.filter(request_id=request_id).values_list("status").order_by(),
        # A parse in segments asks after each batch, in one statement (services.parse._another_request_waits).
        "another request waits": waiting_elsewhere(request_id),
    }
    for name, queryset in probes.items():
        assert_indexed(name, explain(queryset))
    assert _fairest_pending_chunk() is None  # the statement itself runs (same filter as probed above)


def test_the_result_files_join_uses_indexes():
    select = bulk_sql._RESULT_COPY_SQL.split("COPY (", 1)[1].rsplit(") TO STDOUT", 1)[0]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {select}", [uuid.uuid4()])
        assert_indexed("result rows", "\n".join(line for (line,) in cursor.fetchall()))


def test_claims_by_id_use_the_primary_key_whatever_the_due_index_statistics_say(tenant, monkeypatch):
    """A claim of a batch (`id IN (...)` and due) on a table whose statistics were taken when nothing was due:
    with the bare `next_attempt_at <= now` PostgreSQL scans the due-rows index over every due row (the cost
    of each claim grows with the backlog); `due_by` makes it look the batch up by primary key, and so does
    the store's claim, which says the same in SQL."""
    patient = Patient.objects.create(customer=tenant.customer, first_name="A", last_name="B", dob="1980-01-01")
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO docqueries_documentquery (id, customer_id, patient_id, bulk_request_id, status,
                   started_at, documents, attempts, next_attempt_at, error)
               SELECT gen_random_uuid(), %s, %s, gen_random_uuid(), 'processing', now(), '[]', 0,
                   now() + interval '1 hour', ''
               FROM generate_series(1, 100000)""",
            [tenant.customer.id, patient.id],
        )
        cursor.execute("ANALYZE docqueries_documentquery")
        cursor.execute("UPDATE docqueries_documentquery SET next_attempt_at = now() - interval '1 minute'")
    ids = list(DocumentQuery.objects.values_list("id", flat=True)[:500])
    now = timezone.now()
    batch = DocumentQuery.objects.filter(id__in=ids, status=QueryStatus.PROCESSING)
    bare = explain(batch.filter(next_attempt_at__lte=now))
    print(f"\n-- claim with the bare column\n{bare}")
    assert "docquery_due_idx" in bare  # the hazard is real on this server: the test can fail
    claim = explain(batch.filter(due_by("next_attempt_at", now)))
    print(f"\n-- claim with due_by\n{claim}")
    assert "docqueries_documentquery_pkey" in claim and "docquery_due_idx" not in claim
    assert batch.filter(due_by("next_attempt_at", now)).count() == 500  # and it claims what is due
    lease = now + timedelta(minutes=2)
    with explained(monkeypatch, docquery_sql) as plans:
        docquery_sql.claim_batch([str(i) for i in ids], due=now, lease_until=lease)
    assert_indexed("the store's claim", plans[0])
    assert "docqueries_documentquery_pkey" in plans[0] and "docquery_due_idx" not in plans[0]
    monkeypatch.undo()
    claimed = docquery_sql.claim_batch([str(i) for i in ids], due=now, lease_until=lease)
    assert sorted(q.id for q in claimed) == sorted(ids)
    assert {q.patient.id for q in claimed} == {patient.id}


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry run", "import"])
def test_the_absent_patients_are_an_anti_join_not_a_subplan_per_patient(dry_run):
    # `id NOT IN (subquery)` became a subplan probed for every patient once a million-row import's ids
    # outgrew work_mem: the finish of such an import spent minutes on it. SQLite's plan, the NOT IN it is
    # given instead: test_absent_patients.py (this module runs on PostgreSQL only).
    request = SimpleNamespace(id=uuid.uuid4(), facility_id=uuid.uuid4(), dry_run=dry_run)
    plan = explain(absent_patients(request))
    print(f"\n-- absent patients ({'dry run' if dry_run else 'import'})\n{plan}")
    assert "Anti Join" in plan and "SubPlan" not in plan
    assert_indexed("absent patients", plan)


def test_a_deletes_lookups_by_foreign_key_use_the_indexes_that_lead_with_it():
    # A foreign key has no index of its own where another index leads with its column (fewer index entries
    # written per patient, query and row), and a bulk row's patient is indexed only where set: deleting a
    # patient or a customer still finds what refers to it (the cascades, SET_NULL) by index, not by a scan.
    ids = [uuid.uuid4(), uuid.uuid4()]
    lookups = {
        "a deleted patient's rows": (BulkRow.objects.filter(patient_id__in=ids), "bulkrow_patient_idx"),
        "a deleted patient's queries": (DocumentQuery.objects.filter(patient_id__in=ids), "uniq_docquery_patient_bulk"),
        "a deleted patient's facilities": (PatientFacility.objects.filter(patient_id__in=ids), "uniq_patient_facility"),
        "a deleted customer's patients": (Patient.objects.filter(customer_id=ids[0]), "patients_pa_custome"),
        "a deleted customer's queries": (DocumentQuery.objects.filter(customer_id=ids[0]), "docquery_customer_idx"),
        "a deleted customer's webhooks": (WebhookMessage.objects.filter(customer_id=ids[0]), "webhookmsg_customer_idx"),
    }
    for name, (queryset, index) in lookups.items():
        plan = explain(queryset)
        assert_indexed(name, plan)
        assert "Seq Scan" not in plan and index in plan, f"{name}: not through {index}:\n{plan}"
