"""Cohort columns of a bulk file (Metriport's cohort1/cohort2, up to 10 in every indexed form). Failure modes
named: an unknown cohort under the default `reject` rule (the row fails, naming the column, in a dry run too,
and nothing is created), a name too long, an out-of-range index (a warning); under `create`, unknown names
become cohorts; names match existing cohorts ignoring case; a later file without the cohort never removes a
membership."""

from __future__ import annotations

import datetime

import pytest

from bulkimport.models import BulkRequest, BulkRowError
from cohorts import services
from cohorts.models import Cohort, PatientCohort
from patients.header import build_column_plan
from patients.models import Patient
from patients.validation import RowErrorCode, RowValidator
from tests.helpers.bulk import HEADER, csv_bytes, person, result_rows, run_inline, submit

pytestmark = pytest.mark.django_db(transaction=True)

COHORT_HEADER = [*HEADER, "cohort1", "cohort2"]


def cohorts_of(first_name: str) -> set[str]:
    patient = Patient.objects.get(first_name=first_name)
    return set(PatientCohort.objects.filter(patient=patient).values_list("cohort__name", flat=True))


def error_codes(request) -> dict[int, list[tuple[str, str]]]:
    found: dict[int, list[tuple[str, str]]] = {}
    for number, code, field in BulkRowError.objects.filter(request_id=request.id).values_list(
        "row_number", "code", "field"
    ):
        found.setdefault(number, []).append((code, field))
    return found


def run(tenant, rows, header=COHORT_HEADER, dry_run=False) -> BulkRequest:
    request = submit(tenant, csv_bytes(rows, header), dry_run=dry_run)
    run_inline(request.id)
    request.refresh_from_db()
    return request


def test_every_indexed_form_is_read_up_to_ten(db):
    header = [*HEADER, "cohort", "cohort1", "Cohort 2", "cohort-3", "cohort_4", "cohort-10", "cohort-11", "cohort-01"]
    plan = build_column_plan(header)
    assert [name for name, _ in plan.cohorts] == ["cohort", "cohort-1", "cohort-2", "cohort-3", "cohort-4", "cohort-10"]
    assert any("cohort-11" in w for w in plan.warnings) and any("cohort-01" in w for w in plan.warnings)


def test_cells_are_trimmed_upper_cased_and_deduplicated(db):
    plan = build_column_plan([*HEADER, "cohort1", "cohort2", "cohort3"])
    validator = RowValidator(plan, today=datetime.date(2026, 1, 1))
    normalized, errors = validator.validate([*person("Ann"), " high risk ", "HIGH RISK", ""])
    assert errors == [] and normalized["cohorts"] == ["HIGH RISK"]
    _, errors = validator.validate([*person("Ann"), "x" * 201, "", ""])
    assert [(e.code, e.field) for e in errors] == [(RowErrorCode.INVALID_COHORT, "cohort-1")]
    assert "x" * 20 not in errors[0].message  # the cell is not echoed
    without = RowValidator(build_column_plan(HEADER), today=datetime.date(2026, 1, 1)).validate(person("Ann"))[0]
    assert "cohorts" not in without  # files without cohort columns keep their normalized shape


def test_reject_rule_fails_rows_naming_an_unknown_cohort(tenant):
    services.cohort_create(customer=tenant.customer, name="High Risk")
    request = run(tenant, [[*person("Ann"), "high risk", ""], [*person("Bea"), "High Risk", "Diabetes"]])
    assert (request.successful, request.failed) == (1, 1)
    ann, bea = result_rows(request.id)
    assert ann["status"] == "successful" and bea["status"] == "failed"
    assert bea["reason"].startswith("Unknown cohort in cohort-2") and "Diabetes" not in bea["reason"]
    assert error_codes(request) == {2: [("unknown_cohort", "cohort-2")]}
    assert cohorts_of("Ann") == {"High Risk"} and not Patient.objects.filter(first_name="Bea").exists()
    assert list(Cohort.objects.values_list("name", flat=True)) == ["High Risk"]


def test_a_dry_run_reports_unknown_cohorts_and_creates_nothing(tenant):
    services.cohort_policy_set(customer_id=tenant.customer.id, create_unknown=False)
    request = run(tenant, [[*person("Ann"), "Diabetes", ""]], dry_run=True)
    assert (request.successful, request.failed) == (0, 1)
    assert error_codes(request) == {1: [("unknown_cohort", "cohort-1")]}
    assert not Cohort.objects.exists() and not PatientCohort.objects.exists()


def test_create_rule_makes_unknown_cohorts_and_joins_them(tenant, other_tenant):
    services.cohort_policy_set(customer_id=tenant.customer.id, create_unknown=True)
    existing = services.cohort_create(customer=tenant.customer, name="High Risk")
    theirs = services.cohort_create(customer=other_tenant.customer, name="Diabetes")
    request = run(tenant, [[*person("Ann"), "diabetes", "HIGH RISK"], [*person("Bea"), "", "Diabetes"]])
    assert request.failed == 0
    assert cohorts_of("Ann") == {"DIABETES", "High Risk"} and cohorts_of("Bea") == {"DIABETES"}
    created = Cohort.objects.get(customer=tenant.customer, name="DIABETES")
    assert created.id != theirs.id  # cohorts are per customer
    assert Cohort.objects.filter(customer=tenant.customer).count() == 2 and existing.patient_links.count() == 1


def test_a_later_file_adds_and_never_removes(tenant):
    services.cohort_policy_set(customer_id=tenant.customer.id, create_unknown=True)
    run(tenant, [[*person("Ann"), "One", ""]])
    run(tenant, [[*person("Ann"), "", "Two"]])  # the same patient, matched; One is not named any more
    assert cohorts_of("Ann") == {"ONE", "TWO"}
    run(tenant, [person("Ann")], header=HEADER)  # no cohort columns at all
    assert cohorts_of("Ann") == {"ONE", "TWO"}
    assert Patient.objects.count() == 1


def test_get_of_the_request_counts_the_unknown_cohort_rows(tenant, api):
    request = run(tenant, [[*person("Ann"), "Nope", ""], [*person("Bea"), "", ""]])
    body = api.get(f"/medical/v1/patient/bulk/{request.id}").json()
    assert (body["successful"], body["failed"]) == (1, 1)
