"""The hot path's statements reach their rows through an index on PostgreSQL (issue 24: cost linear in the
rows, not in the size of the tables). Each statement is EXPLAINed with sequential scans disabled: a plan that
still scans one of the big tables has no index serving its predicate, and that statement's cost would grow
with every request and patient ever stored. Run with `-s` to read the plans."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection
from django.db.models import QuerySet

import bulkimport.store.postgres as bulk_sql
import patients.store.postgres as patient_sql
from bulkimport.models import BulkChunk, BulkPhase, BulkRow, BulkStatus, ChunkStatus
from bulkimport.services.apply import _fairest_pending_chunk
from docqueries.models import DocumentQuery, QueryStatus
from metriport_bulk.lib.bulkdb.postgres import bound_cursor

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


class _ExplainCursor:
    """Stands in for bound_cursor's cursor: EXPLAINs what the store would execute, runs nothing."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.plans: list[str] = []

    def execute(self, sql: str, params: Any = None) -> None:
        self.cursor.execute(f"EXPLAIN {sql}", params)
        self.plans.append("\n".join(line for (line,) in self.cursor.fetchall()))

    def fetchall(self) -> list[Any]:
        return []


@contextmanager
def explained(monkeypatch: pytest.MonkeyPatch, module: Any) -> Iterator[list[str]]:
    plans: list[str] = []

    @contextmanager
    def explain_cursor() -> Iterator[_ExplainCursor]:
        with bound_cursor() as cursor:
            wrapper = _ExplainCursor(cursor)
            yield wrapper
            plans.extend(wrapper.plans)

    monkeypatch.setattr(module, "bound_cursor", explain_cursor)
    yield plans


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
    }
    for name, queryset in probes.items():
        assert_indexed(name, explain(queryset))
    assert _fairest_pending_chunk() is None  # the statement itself runs (same filter as probed above)


def test_the_result_files_join_uses_indexes():
    select = bulk_sql._RESULT_COPY_SQL.split("COPY (", 1)[1].rsplit(") TO STDOUT", 1)[0]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {select}", [uuid.uuid4()])
        assert_indexed("result rows", "\n".join(line for (line,) in cursor.fetchall()))
