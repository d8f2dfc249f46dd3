"""bulkimport's PostgreSQL statements: the rows' normalized JSON is read by the database, never decoded
in Python, and thousands of ids travel as one binary array parameter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from bulkimport.models import RowStatus
from docqueries.models import DocumentQuery
from metriport_bulk.lib.bulkdb.postgres import bound_cursor
from patients.models import Patient

# A row's address zips, read from its normalized JSON by the database.
_ZIPS = "ARRAY(SELECT a->>'zip' FROM jsonb_array_elements(normalized->'addresses') a)"

# The fields of a pending row that matching needs.
_PENDING_SQL = f"""
SELECT id, number, match_key, {_ZIPS},
       coalesce((normalized->>'hieOptOut')::boolean, false),
       action, matched_patient_id, matched_on, duplicate_of, drift IS NOT NULL
FROM bulkimport_bulkrow
WHERE request_id = %s AND status = 'pending' AND number BETWEEN %s AND %s
ORDER BY number
LIMIT %s
"""

_PLAN_SQL = """
SELECT id, number, match_key
FROM bulkimport_bulkrow
WHERE request_id = %s AND status = 'pending' AND number > %s
ORDER BY number
LIMIT %s
"""

# The number range lets PostgreSQL reach the rows by index, not by scanning the table.
_ZIPS_SQL = f"""
SELECT id, {_ZIPS}
FROM bulkimport_bulkrow
WHERE request_id = %s AND number BETWEEN %s AND %s AND id = ANY(%s)
"""


def pending_rows(request_id: uuid.UUID, *, first: int, last: int, limit: int) -> list[Any]:
    with bound_cursor() as cursor:
        cursor.execute(_PENDING_SQL, [request_id, first, last, limit])
        return cursor.fetchall()


def plan_rows(request_id: uuid.UUID, *, after: int, limit: int) -> list[Any]:
    with bound_cursor() as cursor:
        cursor.execute(_PLAN_SQL, [request_id, after, limit])
        return cursor.fetchall()


def row_zips(request_id: uuid.UUID, rows: Sequence[tuple[int, int]]) -> dict[int, list[str]]:
    with bound_cursor() as cursor:
        cursor.execute(_ZIPS_SQL, [request_id, rows[0][1], rows[-1][1], [row_id for row_id, _ in rows]])
        return dict(cursor.fetchall())


def mark_applied(request_id: uuid.UUID, rows: Sequence[Any], numbers: tuple[int, int]) -> None:
    # The number range lets PostgreSQL reach the rows by index, not by scanning the table.
    with bound_cursor() as cursor:
        cursor.execute(
            """
            UPDATE bulkimport_bulkrow AS b
            SET status = %s, action = d.action, patient_id = d.patient_id, matched_patient_id = d.matched,
                matched_on = d.matched_on
            FROM unnest(%s::bigint[], %s::text[], %s::uuid[], %s::uuid[], %s::text[])
                AS d(id, action, patient_id, matched, matched_on)
            WHERE b.id = d.id AND b.request_id = %s AND b.number BETWEEN %s AND %s
            """,
            [RowStatus.SUCCEEDED, *(list(column) for column in zip(*rows, strict=True)), request_id, *numbers],
        )


# Each row with its patient's Document Query of this request (COPY's text format: NULL is \N, booleans t/f).
# Other apps' tables by their models' names for them, never spelled out here.
_RESULT_COPY_SQL = f"""
COPY (
    SELECT r.raw::text, r.patient_id, r.status, r.reason, r.action,
           coalesce((r.normalized->>'hieOptOut')::boolean, false) OR coalesce(p.hie_opt_out, false),
           q.status, jsonb_array_length(q.documents), r.error_code, r.matched_patient_id, r.matched_on,
           r.normalized->>'facilityId'
    FROM bulkimport_bulkrow AS r
    LEFT JOIN {DocumentQuery._meta.db_table} AS q ON q.patient_id = r.patient_id AND q.bulk_request_id = r.request_id
    LEFT JOIN {Patient._meta.db_table} AS p ON p.id = r.patient_id
    WHERE r.request_id = %s ORDER BY r.number
) TO STDOUT
"""


def result_rows(request_id: uuid.UUID) -> Iterator[Any]:
    """One COPY TO: the server streams rows while the caller writes the ones before them, instead of the
    two taking turns batch by batch."""
    with bound_cursor() as cursor, cursor.copy(_RESULT_COPY_SQL, [request_id]) as copy:
        yield from copy.rows()
