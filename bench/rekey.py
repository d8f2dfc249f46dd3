"""Recomputing every patient's match key (migration patients 0005, `manage.py patient_duplicates --rekey`) and
listing the groups that share one, on PostgreSQL: N patients of stale keys (2% of them spelled twice), timed,
with the process's peak memory (flat in N: one batch at a time). Prints patients/s and the time 1M would take.

    .venv/bin/python bench/rekey.py --patients 200000
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from _stack import start_stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=200_000)
    args = parser.parse_args()
    start_stack("rekey")
    from django.db import connection

    from patients.models import Customer
    from patients.selectors import patient_duplicate_groups
    from patients.services import patients_rekey

    customer = Customer.objects.create(name="bench")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Every 50th patient is written again with accents and a Cyrillic о: a duplicate under the new rule.
        cursor.execute(
            """
            INSERT INTO patients_patient (id, customer_id, external_id, first_name, last_name, dob, gender_at_birth,
                ssn, addresses, contacts, match_key, zips, created_at, updated_at)
            SELECT gen_random_uuid(), %s, '', CASE WHEN i %% 50 = 0 THEN 'J' || chr(1086) || 'sé' ELSE 'Jose' END
                || ' ' || k, 'Garcia' || k, date '1950-01-01' + (k %% 20000), 'M', '',
                '[]'::jsonb, '[]'::jsonb, 'stale-' || i, '["10001"]'::jsonb, now(), now()
            FROM (SELECT i, CASE WHEN i %% 50 = 0 THEN i - 1 ELSE i END AS k FROM generate_series(1, %s) AS i) AS s
            """,
            [customer.id, args.patients],
        )
        cursor.execute("ANALYZE patients_patient")
    print(f"filled {args.patients:,} patients in {time.perf_counter() - started:.1f}s")

    started = time.perf_counter()
    changed = patients_rekey()
    rekey_seconds = time.perf_counter() - started
    started = time.perf_counter()
    groups = patient_duplicate_groups()
    groups_seconds = time.perf_counter() - started
    rate = args.patients / rekey_seconds
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rekey: {changed:,} keys changed in {rekey_seconds:.1f}s ({rate:,.0f} patients/s; 1M: ~{1e6 / rate:.0f}s)")
    print(f"duplicate groups: {len(groups):,} groups in {groups_seconds:.1f}s")
    print(f"peak RSS: {peak:.0f} MB (pid {os.getpid()})")


if __name__ == "__main__":
    main()
