"""Reads scoped to one customer: another customer's id is indistinguishable from an unknown id."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from metriport_bulk.lib.ids import as_uuid
from patients.models import Customer, Facility, Patient


def facility_list(*, customer: Customer) -> QuerySet[Facility]:
    return Facility.objects.filter(customer=customer)


def facility_get(*, customer: Customer, facility_id) -> Facility:
    facility = Facility.objects.filter(customer=customer, id=as_uuid(facility_id)).first()
    if facility is None:
        raise Http404(f"Facility {facility_id} not found.")
    return facility


def patient_list(*, customer: Customer, facility_id=None) -> QuerySet[Patient]:
    patients = Patient.objects.filter(customer=customer)
    if facility_id:
        patients = patients.filter(facilities=facility_get(customer=customer, facility_id=facility_id))
    return patients.prefetch_related("patientfacility_set")


def patient_get(*, customer: Customer, patient_id) -> Patient:
    patient = (
        Patient.objects.filter(customer=customer, id=as_uuid(patient_id))
        .prefetch_related("patientfacility_set")
        .first()
    )
    if patient is None:
        raise Http404(f"Patient {patient_id} not found.")
    return patient
