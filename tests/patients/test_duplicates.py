"""Recomputing stored match keys (migration patients 0005, `patient_duplicates --rekey`) and reporting, never
merging, the patients of one customer that now share one. Failure modes named: keys written by an older rule
(spellings that are one person under the skeleton rule kept apart), an unknown customer id (a command error),
PHI in the command's output (none: ids only)."""

from __future__ import annotations

import datetime
import importlib
import io

import pytest
from django.core.management import CommandError, call_command

from patients.matching import match_key
from patients.models import Patient
from patients.selectors import patient_duplicate_groups
from patients.services import patients_rekey

pytestmark = pytest.mark.django_db


def _old_patient(tenant, first: str, last: str = "Garc\u00eda", *, zip_code: str = "10001", dob: str = "1980-01-02"):
    """A patient as the old rule stored it: lower-cased names, nothing else folded."""
    return Patient.objects.create(
        customer=tenant.customer,
        first_name=first,
        last_name=last,
        dob=datetime.date.fromisoformat(dob),
        gender_at_birth="M",
        addresses=[{"addressLine1": "1 Main St", "city": "New York", "state": "NY", "zip": zip_code}],
        match_key=f"{first.lower()}|{last.lower()}|{dob}|M",
        zips=[zip_code],
    )


@pytest.fixture
def old_patients(tenant, other_tenant):
    same = [
        _old_patient(tenant, "Jos\u00e9"),
        _old_patient(tenant, "J\u043es\u00e9"),  # Cyrillic о
        _old_patient(tenant, "Jose", last="Garcia"),
    ]
    elsewhere = _old_patient(tenant, "Jose", zip_code="94110")  # same key, no zip in common
    twin = _old_patient(tenant, "Juan")  # a different person
    theirs = [_old_patient(other_tenant, "Jose"), _old_patient(other_tenant, "JOS\u00c9")]
    return same, elsewhere, twin, theirs


def test_rekey_recomputes_every_key_in_batches_and_is_idempotent(old_patients):
    same, elsewhere, twin, theirs = old_patients
    changed = patients_rekey(batch_size=2)
    assert changed == 6  # the old keys were lower-cased names; only "jose|garcia" is a skeleton already
    keys = dict(Patient.objects.values_list("id", "match_key"))
    expected = match_key(first_name="Jose", last_name="Garcia", dob="1980-01-02", gender_at_birth="M")
    assert {keys[p.id] for p in [*same, elsewhere, *theirs]} == {expected}
    assert keys[twin.id] != expected
    assert patients_rekey(batch_size=3) == 0


def test_groups_are_per_customer_oldest_first_and_say_whether_they_share_a_zip(tenant, other_tenant, old_patients):
    same, elsewhere, twin, theirs = old_patients
    assert patient_duplicate_groups() == []  # the old keys keep them apart
    patients_rekey()
    groups = {group.customer_id: group for group in patient_duplicate_groups()}
    assert set(groups) == {tenant.customer.id, other_tenant.customer.id}
    ours = groups[tenant.customer.id]
    assert ours.patient_ids == [p.id for p in [*same, elsewhere]] and ours.shares_zip
    assert groups[other_tenant.customer.id].patient_ids == [p.id for p in theirs]
    assert [g.customer_id for g in patient_duplicate_groups(customer_id=other_tenant.customer.id)] == [
        other_tenant.customer.id
    ]
    # Nothing was merged: every patient is still there.
    assert Patient.objects.count() == 7


def test_a_group_without_a_common_zip_is_reported_as_such(tenant):
    _old_patient(tenant, "Jose", zip_code="10001")
    _old_patient(tenant, "Jos\u00e9", zip_code="94110")
    patients_rekey()
    (group,) = patient_duplicate_groups()
    assert not group.shares_zip


def test_the_command_rekeys_and_lists_ids_only(tenant, old_patients):
    same, elsewhere, twin, theirs = old_patients
    out = io.StringIO()
    call_command("patient_duplicates", "--rekey", "--customer", str(tenant.customer.id), stdout=out)
    text = out.getvalue()
    assert "Recomputed the match keys: 6 changed." in text
    assert "1 groups of patients sharing a match key (4 patients); none merged." in text
    for patient in [*same, elsewhere]:
        assert str(patient.id) in text
    assert str(twin.id) not in text and str(theirs[0].id) not in text
    for phi in ("Jos", "Garc", "1980", "10001"):
        assert phi not in text


def test_the_command_refuses_an_unknown_customer(db):
    with pytest.raises(CommandError, match="No customer"):
        call_command("patient_duplicates", "--customer", "not-an-id")


def test_the_migration_recomputes_the_keys_and_reports_counts_only(tenant, old_patients, capsys):
    migration = importlib.import_module("patients.migrations.0005_recompute_match_keys")
    migration.recompute(None, None)
    printed = capsys.readouterr().out
    assert "6 match keys recomputed; 2 groups of patients now share a key (none merged)" in printed
    for phi in ("Jos", "Garc", "1980", "10001"):
        assert phi not in printed
    assert patient_duplicate_groups(customer_id=tenant.customer.id)[0].shares_zip
