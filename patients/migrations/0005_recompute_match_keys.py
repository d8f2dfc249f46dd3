"""Recomputes every patient's match key with the skeleton match rule (patients.matching, docs/identity.md) and
reports, never merges, the patients of one customer that now share a key (`manage.py patient_duplicates`).

It runs the current code on purpose (the key is whatever patients.matching computes now), in batches by id, one
transaction per batch: atomic = False, so a million patients never sit in one transaction."""

from django.db import migrations


def recompute(apps, schema_editor):
    from patients.selectors import patient_duplicate_groups
    from patients.services import patients_rekey

    changed = patients_rekey()
    if changed:
        groups = patient_duplicate_groups()
        print(  # noqa: T201 - the migrate command's output, ids and counts only
            f"\n  patients: {changed} match keys recomputed; {len(groups)} groups of patients now share a key "
            "(none merged): run `manage.py patient_duplicates` or see the admin's duplicate groups."
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("patients", "0004_patient_hie_opt_out"),
    ]

    operations = [migrations.RunPython(recompute, migrations.RunPython.noop, elidable=True)]
