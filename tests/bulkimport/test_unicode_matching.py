"""Visually identical people are one patient: every cell is Unicode-cleaned (NFC, no zero-width characters or
stray BOMs) before validation and matching, through the real parse and apply steps."""

from __future__ import annotations

import pytest

from bulkimport.models import BulkRow
from patients.models import Patient
from tests.helpers.bulk import HEADER, person, run_rows

pytestmark = pytest.mark.django_db


def test_invisible_characters_and_stray_boms_make_no_second_patient(tenant, settings):
    settings.BULK_CHUNK_SIZE = 2  # the variants fall in different chunks too
    request, rows = run_rows(
        tenant,
        [person("Jane"), person("\u200bJane"), person("\ufeffJane"), person("Ja\u2060ne", zip_code="\u200b10001")],
        HEADER,
    )
    assert [row.action for row in rows] == ["created", "duplicate", "duplicate", "duplicate"]
    assert len({row.patient_id for row in rows}) == 1
    patient = Patient.objects.get(customer=tenant.customer)
    assert patient.first_name == "Jane" and patient.zips == ["10001"]


def test_composed_and_decomposed_spellings_are_one_patient(tenant):
    composed = person("Jos\u00e9", last="Garc\u00eda")
    decomposed = person("Jose\u0301", last="Garci\u0301a")
    _, rows = run_rows(tenant, [composed, decomposed], HEADER)
    assert [row.action for row in rows] == ["created", "duplicate"]
    (patient,) = Patient.objects.filter(customer=tenant.customer)
    assert (patient.first_name, patient.last_name) == ("Jos\u00e9", "Garc\u00eda")


def test_a_later_request_with_a_zero_width_name_matches_the_existing_patient(tenant):
    _, (first,) = run_rows(tenant, [person("Jane")], HEADER)
    _, (again,) = run_rows(tenant, [person("\ufeffJane\u200b")], HEADER)
    assert again.action == "unchanged" and again.patient_id == first.patient_id
    assert Patient.objects.filter(customer=tenant.customer).count() == 1
    # The stored raw cell is what the customer sent; only what is validated and matched is cleaned.
    assert BulkRow.objects.get(id=again.id).raw[0] == "\ufeffJane\u200b"


FULLWIDTH_DOB = "\uff11\uff19\uff18\uff10\uff0d\uff10\uff11\uff0d\uff10\uff12"  # １９８０－０１－０２
FULLWIDTH_ZIP = "\uff11\uff10\uff10\uff10\uff11"  # １０００１


def test_fullwidth_and_other_unicode_digits_in_dob_and_zip_read_as_ascii(tenant):
    _, rows = run_rows(
        tenant,
        [
            person("Jane"),
            person("Jane", dob=FULLWIDTH_DOB, zip_code=FULLWIDTH_ZIP),
            person("Jane", dob="\u0661\u0669\u0668\u0660-\u0660\u0661-\u0660\u0662"),  # Arabic-Indic digits
            person("Jane", dob="01\u201302\u20131980", zip_code="\u200e10001-1234"),  # en dashes, a bidi mark
        ],
        HEADER,
    )
    assert [row.action for row in rows] == ["created", "duplicate", "duplicate", "duplicate"]
    patient = Patient.objects.get(customer=tenant.customer)
    assert str(patient.dob) == "1980-01-02" and patient.zips == ["10001"]
    # The result keeps what was sent; what is stored and matched is the ASCII date and zip.
    assert BulkRow.objects.get(id=rows[1].id).raw[2] == FULLWIDTH_DOB


def test_look_alike_letters_and_every_default_ignorable_make_no_second_patient(tenant):
    _, rows = run_rows(
        tenant,
        [
            person("Jos\u00e9", last="Garc\u00eda"),
            person("J\u043es\u00e9", last="GARCIA"),  # Cyrillic о, no accent, capitals
            person("\uff2a\uff4f\uff53\u00e9", last="garc\u00eda\u200e"),  # fullwidth, a bidi mark
            person("Jo\u00ad\u034fse\u2062", last="Gar\u202dc\u180ei\u3164a"),  # invisible characters
        ],
        HEADER,
    )
    assert [row.action for row in rows] == ["created", "duplicate", "duplicate", "duplicate"]
    assert len({row.patient_id for row in rows}) == 1
