"""The bulk `hieOptOut` column, through the HTTP API on both stores: a row saying true creates its patient
opted out, or opts the matched patient out, and starts no Document Query; false or empty never opts a patient
back in; the plan counts an opt-out as a change (`would update`, not `unchanged`); one person's rows opt them
out when any of them says so. And the single-patient create: `hieOptOut: true` that matches an existing
patient opts it out."""

from __future__ import annotations

import pytest

from docqueries.models import DocumentQuery
from patients.models import Patient
from tests.helpers.api import bulk_through_api, patient_through_api
from tests.helpers.bulk import csv_bytes, person, result_rows

pytestmark = pytest.mark.django_db(transaction=True)


def opted_out(first: str) -> bool:
    return Patient.objects.get(first_name=first).hie_opt_out


def queries_of(first: str) -> int:
    return DocumentQuery.objects.filter(patient__first_name=first).count()


def test_a_row_opting_out_creates_its_patient_opted_out_with_no_document_query(api):
    answer = bulk_through_api(api, csv_bytes([person("Ann", opt_out="true"), person("Bea", opt_out="")]))
    assert answer["status"] == "completed"
    assert opted_out("Ann") and not opted_out("Bea")
    assert queries_of("Ann") == 0 and queries_of("Bea") == 1
    words = {row["firstName"]: row["documentQuery"] for row in result_rows(answer["requestId"])}
    assert words == {"Ann": "opted out", "Bea": "completed"}


def test_a_row_opting_out_opts_the_matched_patient_out_and_the_plan_calls_it_an_update(api):
    kay = patient_through_api(api, "Kay")["id"]
    assert queries_of("Kay") == 1  # the API's own
    same = [person("Kay")]
    assert bulk_through_api(api, csv_bytes(same), dry_run=True)["plan"]["actions"]["unchanged"] == 1
    dry = bulk_through_api(api, csv_bytes([person("Kay", opt_out="true")]), dry_run=True)
    assert dry["plan"]["actions"] == {"wouldCreate": 0, "wouldUpdate": 1, "unchanged": 0, "duplicate": 0}
    assert not opted_out("Kay")  # a dry run writes nothing
    imported = bulk_through_api(api, csv_bytes([person("Kay", opt_out="true")]))
    assert imported["plan"]["actions"]["updated"] == 1
    assert opted_out("Kay") and queries_of("Kay") == 1  # no query of the import
    (row,) = result_rows(imported["requestId"])
    assert (row["metriportId"], row["action"], row["documentQuery"]) == (kay, "updated", "opted out")


def test_false_or_empty_never_opts_a_patient_back_in(api):
    bulk_through_api(api, csv_bytes([person("Ann", opt_out="true")]))
    for cell in ("false", "", "no"):
        dry = bulk_through_api(api, csv_bytes([person("Ann", opt_out=cell)]), dry_run=True)
        assert dry["plan"]["actions"]["unchanged"] == 1, cell  # nothing would change: it stays opted out
        answer = bulk_through_api(api, csv_bytes([person("Ann", opt_out=cell)]))
        assert answer["plan"]["actions"]["unchanged"] == 1
        assert opted_out("Ann") and queries_of("Ann") == 0, cell


@pytest.mark.parametrize("cells", [("true", "false"), ("false", "true"), ("", "yes")])
def test_one_persons_rows_opt_them_out_when_any_row_does(api, cells):
    rows = [person("Ann", opt_out=cells[0]), person("ANN", opt_out=cells[1])]
    answer = bulk_through_api(api, csv_bytes(rows))
    assert answer["plan"]["actions"]["created"] == 1 and answer["plan"]["actions"]["duplicate"] == 1
    assert Patient.objects.count() == 1 and opted_out("Ann")
    assert DocumentQuery.objects.count() == 0


def test_single_patient_create_opts_out_the_existing_patient_it_matches(api):
    created = patient_through_api(api, "Ann")
    assert created["hieOptOut"] is False and queries_of("Ann") == 1
    matched = patient_through_api(api, "ann", hieOptOut=True)
    assert matched["id"] == created["id"] and matched["hieOptOut"] is True
    assert opted_out("Ann") and queries_of("Ann") == 1  # no second query
    again = patient_through_api(api, "Ann", hieOptOut=False)  # never opted back in by a create
    assert again["hieOptOut"] is True and opted_out("Ann")
    assert api.get(f"/medical/v1/patient/{created['id']}").json()["hieOptOut"] is True
