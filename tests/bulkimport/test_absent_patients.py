"""The facility's patients no row of a request matched (the absent list of the finish), on both stores: the
same patients, oldest first, whichever form of the query the database runs (PostgreSQL's NOT EXISTS, the
NOT IN SQLite is given); and each database reads the request's rows once, not once per patient."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from bulkimport.models import BulkRequest, BulkRow, RowStatus
from bulkimport.services.plan import absent_patients
from metriport_bulk.lib.bulkdb import orm, postgres
from patients.models import Patient, PatientFacility
from tests.helpers.factories import make_facility

pytestmark = pytest.mark.django_db


def patient(tenant, facility, name: str) -> uuid.UUID:
    made = Patient.objects.create(customer=tenant.customer, first_name=name, last_name="Doe", dob="1980-01-01")
    PatientFacility.objects.create(patient=made, facility=facility)
    return made.id


def request_with_rows(tenant, *, dry_run: bool, patients: list[uuid.UUID | None]) -> BulkRequest:
    """A request whose rows name `patients` in order (None: a failed row, which names none)."""
    request = BulkRequest.objects.create(customer=tenant.customer, facility=tenant.facility, dry_run=dry_run)
    column = "matched_patient_id" if dry_run else "patient_id"
    BulkRow.objects.bulk_create(
        BulkRow(
            request=request,
            number=number,
            raw={},
            status=RowStatus.FAILED if named is None else RowStatus.SUCCEEDED,
            **{column: named},
        )
        for number, named in enumerate(patients, start=1)
    )
    return request


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry run", "import"])
def test_the_absent_patients_are_the_same_in_both_forms_of_the_query(tenant, dry_run):
    ann, bea, cyd, dot, eve = (patient(tenant, tenant.facility, name) for name in ("Ann", "Bea", "Cyd", "Dot", "Eve"))
    elsewhere = patient(tenant, make_facility(tenant.customer, "Annex", "223456789"), "Fay")
    # A failed row names no patient: were its NULL among NOT IN's values, no patient would be absent.
    request = request_with_rows(tenant, dry_run=dry_run, patients=[bea, None, bea, dot, elsewhere])
    request_with_rows(tenant, dry_run=dry_run, patients=[ann, cyd, eve])  # another request's rows count not
    listed = list(absent_patients(request).values_list("id", flat=True))
    assert listed == [ann, cyd, eve]
    # Each store's form on this database: the other database's form gives the same list.
    rows = BulkRow.objects.filter(request_id=request.id)
    column = "matched_patient_id" if dry_run else "patient_id"
    of_facility = Patient.objects.filter(patientfacility__facility_id=tenant.facility.id).order_by("created_at", "id")
    for form in (postgres.absent_from, orm.absent_from):
        assert list(of_facility.filter(form(rows, column, "id")).values_list("id", flat=True)) == listed, form


# What each planner shows when it reads the request's rows once (and what it shows when it reads them for
# every patient): PostgreSQL's anti-join, SQLite's list of the subquery's values filled once.
ONCE = {"postgresql": ("Anti Join", "SubPlan"), "sqlite": ("LIST SUBQUERY", "CORRELATED")}


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry run", "import"])
def test_the_absent_patients_read_the_requests_rows_once_not_per_patient(tenant, dry_run):
    """SQLite has no statistics on the freshly written tables of the embedded default: given NOT EXISTS, it
    searched the request's rows through the request's index for every patient of the facility (7.7 of the
    18 s of a 5,000-row import)."""
    request = request_with_rows(tenant, dry_run=dry_run, patients=[patient(tenant, tenant.facility, "Ann")])
    plan = absent_patients(request).explain()
    print(f"\n-- absent patients on {connection.vendor} ({'dry run' if dry_run else 'import'})\n{plan}")
    once, per_patient = ONCE[connection.vendor]
    assert once in plan and per_patient not in plan, plan
