"""Reads of cohorts, scoped to one customer: another customer's cohort id is an unknown id."""

from __future__ import annotations

import uuid

from django.db.models import Count, QuerySet
from django.http import Http404

from cohorts.models import Cohort, PatientCohort
from metriport_bulk.lib.ids import as_uuid
from patients.models import Customer, Patient


def cohort_list(*, customer: Customer) -> QuerySet[Cohort]:
    """The customer's cohorts, by name, each with `size` (its number of patients)."""
    return Cohort.objects.filter(customer=customer).annotate(size=Count("patient_links")).order_by("name_key")


def cohort_get(*, customer: Customer, cohort_id: str | uuid.UUID) -> Cohort:
    cohort_uuid = as_uuid(cohort_id)
    cohort = cohort_list(customer=customer).filter(id=cohort_uuid).first() if cohort_uuid else None
    if cohort is None:
        raise Http404(f"Cohort {cohort_id} not found.")
    return cohort


def cohorts_of_patient(*, patient: Patient) -> QuerySet[Cohort]:
    # By id, not a join on patient_links: a join filter after the Count annotation would count only this patient.
    memberships = PatientCohort.objects.filter(patient=patient).values("cohort_id")
    return cohort_list(customer=patient.customer).filter(id__in=memberships)


def cohort_patients(*, cohort: Cohort) -> QuerySet[Patient]:
    return Patient.objects.filter(customer_id=cohort.customer_id, cohort_links__cohort=cohort).prefetch_related(
        "patientfacility_set"
    )
