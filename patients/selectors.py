"""Reads scoped to one customer: another customer's id is indistinguishable from an unknown id."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet
from django.http import Http404

from metriport_bulk.lib.ids import as_uuid
from patients.models import Customer, Facility, Patient


def facility_list(*, customer: Customer) -> QuerySet[Facility]:
    return Facility.objects.filter(customer=customer)


def facility_get(*, customer: Customer, facility_id: str | uuid.UUID) -> Facility:
    facility_uuid = as_uuid(facility_id)  # not an id: no such facility
    facility = Facility.objects.filter(customer=customer, id=facility_uuid).first() if facility_uuid else None
    if facility is None:
        raise Http404(f"Facility {facility_id} not found.")
    return facility


class FacilityChoiceError(Exception):
    def __init__(self, detail: str, *, status: int = 400) -> None:
        super().__init__(detail)
        self.status = status


def facility_resolve(*, customer: Customer, facility_id: str | None) -> Facility:
    """The active facility a write is for: `facility_id`, or the customer's only facility when none is given."""
    facilities = Facility.objects.filter(customer=customer)
    if facility_id:
        facility_uuid = as_uuid(facility_id)
        facility = facilities.filter(id=facility_uuid).first() if facility_uuid else None
        if facility is None:
            raise FacilityChoiceError(f"Facility {facility_id} not found.", status=404)
    else:
        candidates = list(facilities[:2])
        if not candidates:
            raise FacilityChoiceError("The account has no facility: create one first.", status=404)
        if len(candidates) > 1:
            raise FacilityChoiceError("The account has more than one facility: set the facilityId query parameter.")
        facility = candidates[0]
    if not facility.active:
        raise FacilityChoiceError(f"Facility {facility.id} is inactive.")
    return facility


def patient_list(
    *, customer: Customer, facility_id: str | uuid.UUID | None = None, cohort_id: str | uuid.UUID | None = None
) -> QuerySet[Patient]:
    patients = Patient.objects.filter(customer=customer)
    if facility_id:
        patients = patients.filter(facilities=facility_get(customer=customer, facility_id=facility_id))
    if cohort_id:
        cohort_uuid = as_uuid(cohort_id)
        if cohort_uuid is None:
            raise Http404(f"Cohort {cohort_id} not found.")
        # Another customer's cohort holds none of this customer's patients: an empty list, as an unknown one.
        patients = patients.filter(cohort_links__cohort_id=cohort_uuid)
    return patients.prefetch_related("patientfacility_set")


def patient_get(*, customer: Customer, patient_id: str | uuid.UUID) -> Patient:
    patient_uuid = as_uuid(patient_id)  # not an id: no such patient
    patient = (
        Patient.objects.filter(customer=customer, id=patient_uuid).prefetch_related("patientfacility_set").first()
        if patient_uuid
        else None
    )
    if patient is None:
        raise Http404(f"Patient {patient_id} not found.")
    return patient


def patient_by_external_id(*, customer: Customer, external_id: str) -> Patient:
    """The customer's oldest patient with this external id (ids are the customer's, so several may share one)."""
    patient = (
        Patient.objects.filter(customer=customer, external_id=external_id)
        .order_by("created_at", "id")
        .prefetch_related("patientfacility_set")
        .first()
    )
    if patient is None:
        raise Http404("No patient with this external id.")
    return patient
