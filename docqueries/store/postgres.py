"""docqueries' PostgreSQL statements."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from django.utils import timezone

from docqueries.models import DocumentQuery, QueryStatus
from docqueries.store.claimed import ClaimedPatient, ClaimedQuery
from metriport_bulk.lib.bulkdb import NEVER
from metriport_bulk.lib.bulkdb.postgres import bound_cursor
from patients.models import Patient

# A new query's id: a UUID of version 7 (RFC 9562: 48 bits of Unix milliseconds, then random bits), so the
# queries a chunk starts go to the right edge of the primary-key index instead of pages all over it. With
# version 4 ids each insert touched a page of an index that outgrows the cache at a million queries.
# PostgreSQL 15 has no uuidv7(): the time goes over the first 6 bytes of a random UUID, and the version
# nibble 0100 becomes 0111.
UUID7 = """encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing
    substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
    52, 1), 53, 1), 'hex')::uuid"""


def start(
    *,
    customer_id: uuid.UUID,
    patient_ids: list[str],
    bulk_request_id: uuid.UUID | None,
    first_step: datetime,
    express: bool,
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
                 next_attempt_at, error, express)
            SELECT {UUID7}, p.customer_id, p.id, %s, %s, %s, '[]'::jsonb, 0, %s, '', %s
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
                express,
                patient_ids,
                customer_id,
                *([] if bulk_request_id is not None else [QueryStatus.PROCESSING]),
            ],
        )
        return [row[0] for row in cursor.fetchall()]


def claim_batch(query_ids: list[str], *, due: datetime, lease_until: datetime) -> list[ClaimedQuery]:
    """Row locks (FOR UPDATE SKIP LOCKED), not a lease written into each row: the claim is one locking read,
    where an UPDATE of every claimed row wrote a new version of it into each of the table's indexes (the
    statement that cost the most after the sweeper's, at a million queries). The rows are reached by key
    (the ids are one array parameter), never through the index of due queries (`coalesce`: see
    bulkdb.due_by). The queries' patients come in the same statement; only the queries' rows are locked
    (OF q), never the patients'. One statement with binary parameters, not two through the ORM: building
    the ORM's SQL with 1,000 ids quoted into it, and decoding its values, took half of a worker's time in
    the medical-data phase (docs/benchmarks.md, eleventh session)."""
    with bound_cursor() as cursor:
        cursor.execute(
            f"""
            SELECT q.id, q.customer_id, q.patient_id, q.bulk_request_id, q.started_at, q.attempts,
                   p.external_id, p.first_name, p.last_name, p.dob, p.gender_at_birth, p.addresses
            FROM {DocumentQuery._meta.db_table} AS q
            JOIN {Patient._meta.db_table} AS p ON p.id = q.patient_id
            WHERE q.id = ANY(%s::uuid[]) AND q.status = %s AND coalesce(q.next_attempt_at, %s) <= %s
            FOR UPDATE OF q SKIP LOCKED
            """,
            [query_ids, QueryStatus.PROCESSING, NEVER, due],
        )
        return [
            ClaimedQuery(
                query_id,
                customer_id,
                patient_id,
                request_id,
                started_at,
                attempts,
                ClaimedPatient(patient_id, external_id, first, last, dob, gender, orjson.loads(addresses)),
            )
            for (
                query_id, customer_id, patient_id, request_id, started_at, attempts,
                external_id, first, last, dob, gender, addresses,
            ) in cursor.fetchall()
        ]  # fmt: skip


# The nearby probe reads the queries in pages of NEARBY_PAGE, at most NEARBY_PAGES of them: while a request's
# queries run, the next one started after one of them is usually its own, or the other half of its chunk,
# ended first by the other worker (another request's chunk may come between too).
NEARBY_PAGE = 100
NEARBY_PAGES = 50
# The greatest UUID: where the walk back from the queries started last begins.
_LAST_UUID = uuid.UUID(int=2**128 - 1)


def processing_nearby(bulk_request_id: uuid.UUID, after: uuid.UUID | None) -> bool:
    """The queries started next after `after` (or, without it, the ones started last), in id order, a page at
    a time until one of the request's is processing. Not the (bulk request, status) index: it keeps an entry
    of every query of the request that has ended (until a vacuum), and a probe through it walks all of them
    before it reaches one still processing (docs/benchmarks.md, thirteenth session).

    A page is `ORDER BY id LIMIT NEARBY_PAGE` after the edge (last id) of the page before, a parameter the
    planner cannot see: an index scan that stops after the page. One `ORDER BY id LIMIT 5000` after `after`
    was planned, below a million queries, as a sort of every query after it (7.5 ms a probe at 100,000);
    one id at a time, the other half of a chunk, ended first, cost 1.3 ms. PostgreSQL 15 has no max(uuid)."""
    table = DocumentQuery._meta.db_table
    forward = after is not None
    order, edge = ("> page.edge ORDER BY id", "DESC") if forward else ("< page.edge ORDER BY id DESC", "ASC")
    with bound_cursor() as cursor:
        cursor.execute(
            f"""
            WITH RECURSIVE page(edge, found, n) AS (
                SELECT %s::uuid, false, 0
                UNION ALL
                SELECT next.edge, next.found, page.n + 1
                FROM page CROSS JOIN LATERAL (
                    SELECT (array_agg(id ORDER BY id {edge}))[1] AS edge,
                           coalesce(bool_or(bulk_request_id = %s AND status = %s), false) AS found
                    FROM (SELECT id, bulk_request_id, status FROM {table} WHERE id {order} LIMIT %s) AS rows
                ) AS next
                WHERE NOT page.found AND page.n < %s AND next.edge IS NOT NULL
            )
            SELECT coalesce(bool_or(found), false) FROM page
            """,
            [after if forward else _LAST_UUID, bulk_request_id, QueryStatus.PROCESSING, NEARBY_PAGE, NEARBY_PAGES],
        )
        row = cursor.fetchone()
        return bool(row and row[0])
