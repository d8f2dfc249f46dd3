"""A row's cells (BulkRowCells): stored with the row by parse under the row's id, never written by apply, whose
outcome goes to the narrow row; moved by the migration both ways. A restarted parse deletes them with their rows:
tests/reliability (test_resume, test_parse_segments)."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from bulkimport import services
from bulkimport.models import BulkChunk, BulkRow, BulkRowCells, RowStatus
from bulkimport.store import store
from tests.helpers.bulk import cells_without_row, csv_bytes, person, submit
from tests.helpers.factories import make_tenant

pytestmark = pytest.mark.django_db

NAMES = ["Ann", "Bea", "Cy", "Dee", "Eve"]
WRITES_CELLS = re.compile(r'(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?bulkimport_bulkrowcells\b', re.IGNORECASE)


def test_each_row_holds_its_own_cells_and_values():
    rows = [person(name) for name in NAMES]
    rows[2][2] = "not a date"  # dob: an invalid row keeps its cells, and has no normalized values
    request = submit(make_tenant(), csv_bytes(rows))
    services.bulk_request_parse(request_id=request.id)
    stored = BulkRow.objects.filter(request_id=request.id).select_related("cells").order_by("number")
    assert [(row.number, row.cells.raw) for row in stored] == list(enumerate(rows, start=1))
    assert [(row.cells.normalized or {}).get("firstName") for row in stored] == ["Ann", "Bea", None, "Dee", "Eve"]
    assert [row.status for row in stored] == ["pending", "pending", "failed", "pending", "pending"]


def test_applying_rows_writes_their_outcome_never_their_cells():
    request = submit(make_tenant(), csv_bytes([person(name) for name in NAMES]))
    services.bulk_request_parse(request_id=request.id)
    cells_before = list(BulkRowCells.objects.filter(row__request_id=request.id).order_by("row_id").values())
    with CaptureQueriesContext(connection) as queries:
        for chunk_id in BulkChunk.objects.filter(request_id=request.id).values_list("id", flat=True):
            services.bulk_chunk_apply(chunk_id=chunk_id)
    assert set(BulkRow.objects.filter(request_id=request.id).values_list("status", "action")) == {
        (RowStatus.SUCCEEDED, "created")
    }
    writes = [query["sql"] for query in queries.captured_queries if WRITES_CELLS.search(query["sql"])]
    assert writes == []
    assert any("bulkimport_bulkrowcells" in query["sql"] for query in queries.captured_queries)  # read, yes
    assert list(BulkRowCells.objects.filter(row__request_id=request.id).order_by("row_id").values()) == cells_before


def test_more_rows_than_ids_taken_are_refused_and_nothing_is_stored():
    request = submit(make_tenant(), csv_bytes([person("Ann")]))
    given = [(request.id, number, RowStatus.PENDING, ["x"], None) for number in (1, 2, 3)]
    with pytest.raises(ValueError, match="more than 2 rows"), transaction.atomic():
        store().rows_insert(("request_id", "number", "status"), iter(given), most=2)
    assert not BulkRow.objects.filter(request_id=request.id).exists()
    assert cells_without_row() == 0


def decoded(value):
    """A JSON column read by raw SQL: text on SQLite, already decoded or text on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_the_cells_of_existing_rows_both_ways():
    """0013 on a database with rows: back to the rows' own columns, then into the cells table again."""
    request = submit(make_tenant(), csv_bytes([person(name) for name in NAMES[:2]]))
    services.bulk_request_parse(request_id=request.id)
    expected = sorted(BulkRowCells.objects.values_list("row_id", "raw", "normalized"))
    executor = MigrationExecutor(connection)
    try:
        executor.migrate([("bulkimport", "0012_request_patient_ids")])
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, raw, normalized FROM bulkimport_bulkrow ORDER BY id")
            back = [(row_id, *(decoded(value) for value in cells)) for row_id, *cells in cursor]
        assert back == expected
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert sorted(BulkRowCells.objects.values_list("row_id", "raw", "normalized")) == expected
