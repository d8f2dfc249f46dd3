"""The apply step (create or update patients from valid rows), pinned row by row: which patient each row
becomes, what the patient holds afterwards, facility links and Document Queries. Runs the pipeline inline
(parse, every chunk, finish) so the database writes are the real ones."""

from __future__ import annotations

import io
import uuid
from datetime import date

import pytest
from django.db import connection

from bulkimport import services
from bulkimport.models import BulkChunk, BulkRow
from bulkimport.services.plan import row_patient_id
from docqueries.models import DocumentQuery
from patients.columns import PATIENT_COLUMNS, patient_fields
from patients.matching import match_key
from patients.models import Patient, PatientFacility
from patients.store.postgres import PATIENT_SQL
from tests.helpers.bulk import csv_bytes, run_rows

pytestmark = pytest.mark.django_db

WIDE_HEADER = [
    "externalId", "firstName", "lastName", "dob", "gender",
    "addressLine1", "addressLine2", "city", "state", "zip",
    "addressLine1-2", "city-2", "state-2", "zip-2",
    "phone-1", "phone-2", "phone-3", "email-1", "email-2",
    "ssn", "driversLicenseNo", "driversLicenseState", "hieOptOut",
]  # fmt: skip


def wide(
    first: str,
    *,
    last: str = "Doe",
    dob: str = "1980-01-02",
    gender: str = "F",
    zip_code: str = "10001",
    zip2: str = "",
    phones: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
    ext: str = "",
    ssn: str = "",
    license_no: str = "",
    opt_out: str = "",
) -> list[str]:
    second = ["2 Side St", "Boston", "MA", zip2] if zip2 else ["", "", "", ""]
    phones_cells = [*phones, "", "", ""][:3]
    email_cells = [*emails, "", ""][:2]
    return [
        ext, first, last, dob, gender,
        "1 Main St", "Apt 4", "New York", "NY", zip_code, *second,
        *phones_cells, *email_cells,
        ssn, license_no, "NY" if license_no else "", opt_out,
    ]  # fmt: skip


def run(tenant, rows: list[list[str]], header: list[str] = WIDE_HEADER):
    return run_rows(tenant, rows, header)


def derived_id(request, number: int) -> uuid.UUID:
    return row_patient_id(request, number)


def test_a_new_patient_holds_exactly_the_normalized_row(tenant):
    request, (row,) = run(
        tenant,
        [
            wide(
                "ann marie",
                last="o'neil",
                zip_code="10001",
                zip2="02134",
                phones=("(212) 555-0101", "", "212.555.0103"),
                emails=("Ann@Example.com",),
                ext="A-1",
                ssn="123-45-6789",
                license_no="D123",
            )
        ],
    )
    assert (row.status, row.action, row.patient_id) == ("succeeded", "created", derived_id(request, 1))
    patient = Patient.objects.get(id=row.patient_id)
    normalized = row.normalized
    assert patient.customer_id == tenant.customer.id
    assert (patient.first_name, patient.last_name) == (normalized["firstName"], normalized["lastName"])
    assert patient.dob == date(1980, 1, 2) and patient.gender_at_birth == "F"
    assert (patient.external_id, patient.ssn) == ("A-1", "123456789")
    assert patient.drivers_license == normalized["driversLicense"] and patient.drivers_license["value"] == "D123"
    assert patient.addresses == normalized["addresses"] and len(patient.addresses) == 2
    assert patient.zips == ["02134", "10001"]  # sorted, distinct
    # Phones and emails pair up by position; the longer list continues alone.
    assert patient.contacts == [
        {"phone": normalized["phones"][0], "email": normalized["emails"][0]},
        {"phone": normalized["phones"][1]},
    ]
    assert patient.match_key == match_key(
        first_name=patient.first_name, last_name=patient.last_name, dob="1980-01-02", gender_at_birth="F"
    )
    assert PatientFacility.objects.filter(patient=patient, facility=tenant.facility).count() == 1
    assert DocumentQuery.objects.filter(patient=patient, bulk_request_id=request.id).count() == 1


def test_optional_fields_absent_leave_empty_values(tenant):
    _, (row,) = run(tenant, [wide("Bo")])
    patient = Patient.objects.get(id=row.patient_id)
    assert (patient.external_id, patient.ssn, patient.drivers_license, patient.contacts) == ("", "", None, [])
    assert patient.zips == ["10001"]


def test_the_same_person_twice_in_a_file_is_one_patient_holding_the_last_row(tenant, settings):
    settings.BULK_CHUNK_SIZE = 2  # rows 1-2 in one chunk, rows 3-4 in the next
    request, rows = run(
        tenant,
        [
            wide("Ann", ext="first"),
            wide("ANN", ext="second", phones=("212-555-0101",)),
            wide("ann", ext="third", zip_code="10001", zip2="02134"),
            wide("Ann", ext="elsewhere", zip_code="94105"),  # no shared zip: another person
        ],
    )
    # Rows 2 and 3 are the same person as row 1 (issue 22): reported `duplicate`, naming row 1.
    assert [row.action for row in rows] == ["created", "duplicate", "duplicate", "created"]
    assert [row.duplicate_of for row in rows] == [None, 1, 1, None]
    first_id = derived_id(request, 1)
    assert [row.patient_id for row in rows] == [first_id, first_id, first_id, derived_id(request, 4)]
    patient = Patient.objects.get(id=first_id)
    assert patient.external_id == "third" and patient.zips == ["02134", "10001"] and patient.contacts == []
    assert patient.first_name == "Ann"
    assert Patient.objects.count() == 2
    assert PatientFacility.objects.count() == 2
    # One Document Query per patient of the request, not per row.
    assert DocumentQuery.objects.filter(bulk_request_id=request.id).count() == 2


def test_a_later_row_matches_through_zips_an_earlier_row_of_the_same_chunk_replaced(tenant):
    # Row 2 replaces the zips of row 1's patient ({10001} -> {02134}); row 3 shares only 02134 with it.
    request, rows = run(
        tenant,
        [wide("Cy", zip_code="10001"), wide("Cy", zip_code="10001", zip2="02134"), wide("Cy", zip_code="02134")],
    )
    assert [row.action for row in rows] == ["created", "duplicate", "duplicate"]
    assert {row.patient_id for row in rows} == {derived_id(request, 1)}


def test_an_existing_patient_is_updated_and_linked_not_duplicated(tenant):
    _, (earlier,) = run(tenant, [wide("Dee", ext="old", ssn="123-45-6789")])
    before = Patient.objects.get(id=earlier.patient_id)
    request, rows = run(tenant, [wide("DEE", ext="new", emails=("dee@example.com",)), wide("Dee", zip_code="73301")])
    assert [row.action for row in rows] == ["updated", "created"]
    assert rows[0].patient_id == before.id and rows[1].patient_id == derived_id(request, 2)
    after = Patient.objects.get(id=before.id)
    assert after.external_id == "new" and after.ssn == "" and after.contacts == [{"email": "dee@example.com"}]
    assert after.first_name == "Dee"  # the name as the row spells it after normalization
    assert after.match_key == before.match_key and after.created_at == before.created_at
    assert after.updated_at > before.updated_at
    assert PatientFacility.objects.filter(patient=after).count() == 1
    assert DocumentQuery.objects.filter(patient=after).count() == 2  # one per bulk request


def test_another_customers_identical_patient_is_never_matched(tenant, other_tenant):
    run(other_tenant, [wide("Eve")])
    _, (row,) = run(tenant, [wide("Eve")])
    assert row.action == "created"
    assert Patient.objects.get(id=row.patient_id).customer_id == tenant.customer.id
    assert Patient.objects.count() == 2


def test_created_patients_are_ordered_by_row_with_distinct_created_at(tenant, settings):
    settings.BULK_CHUNK_SIZE = 3
    _, rows = run(tenant, [wide(f"Name{chr(65 + i)}") for i in range(8)])
    created = [Patient.objects.get(id=row.patient_id).created_at for row in rows]
    assert created == sorted(created) and len(set(created)) == len(created)


def test_opted_out_rows_get_no_document_query_but_their_patient(tenant):
    request, rows = run(tenant, [wide("Fay", opt_out="true"), wide("Gus", opt_out="false")])
    assert [row.action for row in rows] == ["created", "created"]
    assert not DocumentQuery.objects.filter(patient_id=rows[0].patient_id).exists()
    assert DocumentQuery.objects.filter(patient_id=rows[1].patient_id, bulk_request_id=request.id).count() == 1


_ANY_ROW = {
    "firstName": "Ana",
    "lastName": "Lee",
    "dob": "1980-01-02",
    "genderAtBirth": "F",
    "addresses": [{"zip": "85001"}],
}


def test_patients_built_by_the_database_equal_the_python_reference_on_realistic_rows(tenant):
    """PostgreSQL builds patients from the stored JSON (patients.store.postgres.PATIENT_SQL); the embedded
    SQLite default builds them in Python (patients.columns.patient_fields). Both must give the same patient
    for every valid sample row, column for column."""
    assert set(PATIENT_SQL) == set(PATIENT_COLUMNS) == set(patient_fields({**_ANY_ROW})) - {"match_key"}
    from devtools.sample import SAMPLE_HEADER, sample_rows

    rows = [row for row in sample_rows(400, invalid_ratio=0.0, seed=11)]
    _, stored = run(tenant, rows, header=SAMPLE_HEADER)
    patients = {p.id: p for p in Patient.objects.filter(id__in=[row.patient_id for row in stored])}
    compared = 0
    for row in stored:
        if row.action != "created":
            continue
        expected = patient_fields(row.normalized)
        patient = patients[row.patient_id]
        actual = {name: getattr(patient, name) for name in expected}
        actual["dob"] = patient.dob.isoformat()
        assert actual == expected, row.number
        compared += 1
    assert compared > 350
    assert any(p.contacts for p in patients.values()) and any(p.drivers_license for p in patients.values())


@pytest.mark.real_services
def test_patient_sql_equals_the_python_reference_for_every_shape_of_contacts_and_addresses():
    """PATIENT_SQL builds contacts and zips one way for the common shapes (at most one phone and one email,
    one address) and another for the rest: both equal patient_fields on every shape, blanks included."""
    import json
    from itertools import product

    from django.db import connection

    phones = [
        None, [], [""], [None], ["555-0101"], ["555-0101", ""], ["", "555-0102"], ["555-0101", "555-0102", "555-0103"]
    ]  # fmt: skip
    emails = [None, [], [""], ["a@example.com"], ["a@example.com", "b@example.com"]]
    zips = [[], ["10001"], ["10001", "10001"], ["73301", "10001"], ["10001", "73301", "10001"]]
    names = ", ".join(PATIENT_SQL)
    compared = 0
    with connection.cursor() as cursor:
        for phone_list, email_list, zip_list in product(phones, emails, zips):
            normalized = {**_ANY_ROW, "addresses": [{"zip": z, "city": "X"} for z in zip_list]}
            if phone_list is not None:
                normalized["phones"] = phone_list
            if email_list is not None:
                normalized["emails"] = email_list
            cursor.execute(
                f"SELECT {', '.join(PATIENT_SQL.values())} FROM (SELECT %s::jsonb AS n) AS r", [json.dumps(normalized)]
            )
            row = dict(zip(names.split(", "), cursor.fetchone(), strict=True))
            expected = patient_fields(normalized)
            got = {
                name: json.loads(row[name]) if isinstance(row[name], str) else row[name]
                for name in ("contacts", "zips")
            }
            assert got == {"contacts": expected["contacts"], "zips": expected["zips"]}, normalized
            compared += 1
    assert compared == len(phones) * len(emails) * len(zips)


def test_a_chunk_takes_the_same_handful_of_statements_for_any_number_of_rows(
    tenant, settings, django_assert_max_num_queries
):
    from devtools.sample import SAMPLE_HEADER, sample_rows

    settings.BULK_CHUNK_SIZE = 1_000
    body = csv_bytes(list(sample_rows(1_000, invalid_ratio=0.0, seed=5)), SAMPLE_HEADER)
    request = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
    services.bulk_request_parse(request_id=request.id)
    (chunk_id,) = BulkChunk.objects.filter(request_id=request.id).values_list("id", flat=True)
    # PostgreSQL: 17 statements for 1,000 rows, as for 10 (chunk and request bookkeeping, the rows' match
    # fields, advisory locks, existing patients, then one statement each for patients, facility links, row
    # outcomes, the customer's Document Query budget and Document Queries, and the look for the file's
    # duplicates once the last chunk is done), and the queries' lane held back first (an UPDATE, and an INSERT
    # the first time: docqueries.services.lanes). SQLite batches the ORM writes by its parameter limit, and
    # looks the new patients' ids up first (an id taken by an earlier run of the row: patients.store).
    with django_assert_max_num_queries(20 if connection.vendor == "postgresql" else 65):
        services.bulk_chunk_apply(chunk_id=chunk_id)
    assert BulkRow.objects.filter(request_id=request.id, status="succeeded").count() == 1_000


def test_visually_identical_names_are_one_patient(tenant):
    """Zero-width characters, stray BOMs and NFD decompositions are invisible in a spreadsheet: the people
    they spell are one patient each (SPEC §6)."""
    jane = ["Jane", "\u200bJane", "\ufeffJane", "Ja\u200dne\u2060"]
    jose = [("Jos\u00e9", "Garc\u00eda"), ("Jose\u0301", "Garci\u0301a")]
    rows = [wide(first) for first in jane] + [wide(first, last=last, zip_code="10002") for first, last in jose]
    request, stored = run(tenant, rows)
    assert Patient.objects.filter(customer=tenant.customer).count() == 2
    assert [row.action for row in stored] == ["created", "duplicate", "duplicate", "duplicate", "created", "duplicate"]
    assert {p.first_name for p in Patient.objects.filter(customer=tenant.customer)} == {"Jane", "Jos\u00e9"}
    # The result file echoes what was uploaded, invisible characters included.
    assert stored[1].raw[1] == "\u200bJane"
