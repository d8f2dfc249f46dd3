"""patients' PostgreSQL statements: a batch's values go from their source (bulk rows' normalized JSON) to
the patient rows inside the database, never through Python, in four set-based statements."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from metriport_bulk.lib.bulkdb.postgres import bound_cursor
from patients.store.records import ChangedPatient

if TYPE_CHECKING:
    from patients.store import DemographicsSource
    from patients.store.records import NewPatient

# Columns a source writes to its patient: the same values as patients.columns.patient_fields, computed
# by PostgreSQL from the normalized JSON `n` (tests/bulkimport/test_apply.py holds the two equal).
# match_key is not here: a patient keeps the key it was created with.
_PHONES = "CASE jsonb_typeof(n->'phones') WHEN 'array' THEN n->'phones' ELSE '[]'::jsonb END"
_EMAILS = "CASE jsonb_typeof(n->'emails') WHEN 'array' THEN n->'emails' ELSE '[]'::jsonb END"
PATIENT_SQL = {
    "external_id": "coalesce(n->>'externalId', '')",
    "first_name": "n->>'firstName'",
    "last_name": "n->>'lastName'",
    "dob": "(n->>'dob')::date",
    "gender_at_birth": "n->>'genderAtBirth'",
    "ssn": "coalesce(n->>'ssn', '')",
    "drivers_license": "nullif(n->'driversLicense', 'null'::jsonb)",
    "addresses": "n->'addresses'",
    # Most rows have at most one phone and one email, and one address: built directly, without the general
    # form's subquery (several times cheaper per row; the two forms give the same value). `x->1 IS NULL`: x has
    # no second element (or is no array, which the general form reads as empty too).
    "contacts": (
        "CASE WHEN n->'phones'->1 IS NULL AND n->'emails'->1 IS NULL THEN "
        "CASE WHEN n->'phones'->0 IS NULL AND n->'emails'->0 IS NULL THEN '[]'::jsonb "
        "ELSE jsonb_build_array(jsonb_strip_nulls(jsonb_build_object("
        "'phone', nullif(n->'phones'->>0, ''), 'email', nullif(n->'emails'->>0, '')))) END "
        "ELSE (SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object("
        "'phone', nullif(p.v #>> '{}', ''), 'email', nullif(e.v #>> '{}', ''))) ORDER BY coalesce(p.i, e.i)), "
        "'[]'::jsonb) "
        f"FROM jsonb_array_elements({_PHONES}) WITH ORDINALITY p(v, i) "
        f"FULL JOIN jsonb_array_elements({_EMAILS}) WITH ORDINALITY e(v, i) ON p.i = e.i) END"
    ),
    "zips": (
        "CASE WHEN n->'addresses'->1 IS NULL AND n->'addresses'->0 IS NOT NULL "
        "THEN jsonb_build_array(n->'addresses'->0->>'zip') "
        "ELSE (SELECT coalesce(jsonb_agg(z ORDER BY z), '[]'::jsonb) "
        "FROM (SELECT DISTINCT a->>'zip' COLLATE \"C\" AS z FROM jsonb_array_elements(n->'addresses') a) AS s) END"
    ),
}


def match_candidates(customer_id: uuid.UUID, keys: Sequence[str]) -> list[Any]:
    with bound_cursor() as cursor:
        # One index lookup per key (OFFSET 0 keeps the planner from scanning all of the customer's
        # patients, which it does on freshly filled tables whose statistics say they are tiny).
        cursor.execute(
            """
            SELECT p.id, p.match_key, ARRAY(SELECT jsonb_array_elements_text(p.zips))
            FROM unnest(%s::text[]) AS k(key)
            JOIN LATERAL (
                SELECT id, match_key, zips, created_at FROM patients_patient
                WHERE customer_id = %s AND match_key = k.key OFFSET 0
            ) AS p ON true
            ORDER BY p.created_at, p.id
            """,
            [list(keys), customer_id],
        )
        return cursor.fetchall()


def write_batch(
    *,
    customer_id: uuid.UUID,
    facility_id: uuid.UUID,
    created: Sequence[NewPatient],
    updated: Sequence[ChangedPatient],
    now: datetime,
    source: DemographicsSource,
) -> None:
    names = list(PATIENT_SQL)
    relation, relation_params = source.relation()
    with bound_cursor() as cursor:
        if created:
            cursor.execute(
                f"""
                INSERT INTO patients_patient
                    (id, customer_id, {", ".join(names)}, match_key, hie_opt_out, created_at, updated_at)
                SELECT d.id, %s, {", ".join(PATIENT_SQL.values())}, d.match_key, d.opt_out, d.created_at, d.created_at
                FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::boolean[], %s::timestamptz[])
                    AS d(id, source, match_key, opt_out, created_at)
                JOIN ({relation}) AS r ON r.id = d.source
                ON CONFLICT (id) DO NOTHING
                RETURNING id
                """,
                [
                    customer_id,
                    [p.id for p in created],
                    [p.source for p in created],
                    [p.match_key for p in created],
                    [p.hie_opt_out for p in created],
                    [p.created_at for p in created],
                    *relation_params,
                ],
            )
            inserted = {row[0] for row in cursor.fetchall()}
            if len(inserted) < len(created):
                # Ids taken already: patients an earlier run of the same rows created (see PatientStore).
                updated = [
                    *updated,
                    *(ChangedPatient(p.id, p.source, p.hie_opt_out) for p in created if p.id not in inserted),
                ]
        if updated:
            assignments = ", ".join(f"{name} = {expression}" for name, expression in PATIENT_SQL.items())
            cursor.execute(
                f"""
                UPDATE patients_patient AS p
                SET {assignments}, hie_opt_out = p.hie_opt_out OR d.opt_out, updated_at = %s
                FROM unnest(%s::uuid[], %s::bigint[], %s::boolean[]) AS d(id, source, opt_out)
                JOIN ({relation}) AS r ON r.id = d.source
                WHERE p.id = d.id
                """,
                [
                    now,
                    [p.id for p in updated],
                    [p.source for p in updated],
                    [p.opt_out for p in updated],
                    *relation_params,
                ],
            )
        cursor.execute(
            """
            INSERT INTO patients_patientfacility (patient_id, facility_id, created_at)
            SELECT patient_id, %s, %s FROM unnest(%s::uuid[]) AS patient_id
            ON CONFLICT DO NOTHING
            """,
            [facility_id, now, [p.id for p in created] + [p.id for p in updated]],
        )


def rekey(keys: Sequence[tuple[uuid.UUID, str]]) -> int:
    if not keys:
        return 0
    with bound_cursor() as cursor:
        cursor.execute(
            """
            UPDATE patients_patient AS p SET match_key = d.key
            FROM unnest(%s::uuid[], %s::text[]) AS d(id, key)
            WHERE p.id = d.id AND p.match_key IS DISTINCT FROM d.key
            """,
            [[patient_id for patient_id, _ in keys], [key for _, key in keys]],
        )
        return cursor.rowcount
