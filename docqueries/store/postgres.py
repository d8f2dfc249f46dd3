"""docqueries' PostgreSQL statements."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.utils import timezone

from docqueries.models import DocumentQuery, QueryStatus
from metriport_bulk.lib.bulkdb import due_by
from metriport_bulk.lib.bulkdb.postgres import bound_cursor
from patients.models import Patient


def start(
    *, customer_id: uuid.UUID, patient_ids: list[str], bulk_request_id: uuid.UUID | None, first_step: datetime
) -> list[Any]:
    """One INSERT ... SELECT: the customer's patients among `patient_ids` (an array parameter), minus
    conflicts; returns the ids created."""
    now = timezone.now()
    not_processing = (
        ""
        if bulk_request_id is not None
        else "AND NOT EXISTS (SELECT 1 FROM docqueries_documentquery AS q WHERE q.patient_id = p.id AND q.status = %s)"
    )
    with bound_cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO docqueries_documentquery
                (id, customer_id, patient_id, bulk_request_id, status, started_at, documents, attempts,
                 next_attempt_at, error)
            SELECT gen_random_uuid(), p.customer_id, p.id, %s, %s, %s, '[]'::jsonb, 0, %s, ''
            FROM unnest(%s::uuid[]) AS wanted(id)
            -- OFFSET 0 keeps this one primary-key lookup per wanted id: on fresh tables (stale statistics)
            -- the planner would otherwise scan all of the customer's patients.
            JOIN LATERAL (
                SELECT id, customer_id FROM {Patient._meta.db_table}
                WHERE id = wanted.id AND customer_id = %s AND NOT hie_opt_out OFFSET 0
            ) AS p ON true
            WHERE true {not_processing}
            ORDER BY p.id
            ON CONFLICT DO NOTHING
            RETURNING id
            """,
            [
                bulk_request_id,
                QueryStatus.PROCESSING,
                now,
                first_step,
                patient_ids,
                customer_id,
                *([] if bulk_request_id is not None else [QueryStatus.PROCESSING]),
            ],
        )
        return [row[0] for row in cursor.fetchall()]


def claim_batch(query_ids: list[str], *, due: datetime, lease_until: datetime) -> list[Any]:
    """Row locks (FOR UPDATE SKIP LOCKED), not a lease written into each row: the claim is one locking read,
    where an UPDATE of every claimed row wrote a new version of it into each of the table's six indexes
    (the statement that cost the most after the sweeper's, at a million queries). `due_by`: the rows are
    reached by key, never through the index of due queries."""
    return list(
        DocumentQuery.objects.select_for_update(of=("self",), skip_locked=True)
        .filter(due_by("next_attempt_at", due), id__in=query_ids, status=QueryStatus.PROCESSING)
        .select_related("patient")
    )
