"""Reads scoped to one customer: another customer's id is indistinguishable from an unknown id."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet
from django.http import Http404

from metriport_bulk.lib.bulkdb import absent_from
from metriport_bulk.lib.ids import as_uuid
from patients.columns import PATIENT_COLUMNS, patient_fields
from patients.matching import shares_zip
from patients.models import Customer, Facility, Patient


def facility_list(*, customer: Customer) -> QuerySet[Facility]:
    return Facility.objects.filter(customer=customer)


def facility_get(*, customer: Customer, facility_id: str | uuid.UUID) -> Facility:
    facility_uuid = as_uuid(facility_id)  # not an id: no such facility
    facility = Facility.objects.filter(customer=customer, id=facility_uuid).first() if facility_uuid else None
    if facility is None:
        raise Http404(f"Facility {facility_id} not found.")
    return facility


def facility_activity(*, customer_id: uuid.UUID) -> dict[str, bool]:
    """Whether each of the customer's facilities is active, by id (a bulk file's facilityId cells are checked
    against it)."""
    rows = Facility.objects.filter(customer_id=customer_id).values_list("id", "active")
    return {str(facility_id): active for facility_id, active in rows}


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


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    """Patients of one customer that share a match key (ids only: the key itself is PHI)."""

    customer_id: uuid.UUID
    patient_ids: list[uuid.UUID]  # oldest first: the one a matching row or API call is given
    shares_zip: bool  # two of them share a zip too: the match rule cannot tell them apart any more


def patient_duplicate_groups(*, customer_id: uuid.UUID | None = None, limit: int | None = None) -> list[DuplicateGroup]:
    """The groups of patients of one customer that share a match key (after a change of the match rule, or
    patients written before it), per customer, at most `limit` groups. Read only: nothing is merged.

    One GROUP BY over the (customer, match_key) index, then the groups' patients by the same index."""
    patients = Patient.objects.all()
    if customer_id is not None:
        patients = patients.filter(customer_id=customer_id)
    shared = (
        patients.values("customer_id", "match_key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .order_by("customer_id", "match_key")
        .values_list("customer_id", "match_key")
    )
    keys: dict[uuid.UUID, list[str]] = {}
    for group_customer, key in shared[:limit] if limit is not None else shared:
        keys.setdefault(group_customer, []).append(key)
    groups = []
    for group_customer, customer_keys in keys.items():
        members: dict[str, list[tuple[uuid.UUID, list[str]]]] = {key: [] for key in customer_keys}
        for start in range(0, len(customer_keys), 1000):
            found = (
                Patient.objects.filter(customer_id=group_customer, match_key__in=customer_keys[start : start + 1000])
                .order_by("created_at", "id")
                .values_list("match_key", "id", "zips")
            )
            for key, patient_id, zips in found:
                members[key].append((patient_id, zips))
        for key in customer_keys:
            group = members[key]
            shares = any(shares_zip(a[1], b[1]) for i, a in enumerate(group) for b in group[i + 1 :])
            groups.append(DuplicateGroup(group_customer, [patient_id for patient_id, _ in group], shares))
    return groups


# --- bulk plans (issue 22): what a roster would change, read without writing -------------------------------

# Identifiers beside the match rule that a plan names when the row and the patient agree on them.
_AGREEING_IDENTIFIERS = (("external_id", "externalId"), ("ssn", "ssn"))


def patients_compare(
    *, customer_id: uuid.UUID, pairs: Sequence[tuple[uuid.UUID, dict[str, Any]]]
) -> list[tuple[bool, list[str]]]:
    """For each (patient id, a valid row's normalized values): whether writing the values to the patient
    would change no stored value (a row with `hieOptOut` true changes a patient not opted out yet; one without
    never changes the opt-out), and the identifiers beyond the match rule both have and agree on (`externalId`,
    `ssn`). A patient that is gone compares as changed."""
    stored = {
        values["id"]: values
        for values in Patient.objects.filter(customer_id=customer_id, id__in={p for p, _ in pairs}).values(
            "id", "hie_opt_out", *PATIENT_COLUMNS
        )
    }
    answers: list[tuple[bool, list[str]]] = []
    for patient_id, normalized in pairs:
        now = stored.get(patient_id)
        if now is None:
            answers.append((False, []))
            continue
        wanted = patient_fields(normalized)
        same = all(_stored_text(now[name]) == _stored_text(wanted[name]) for name in PATIENT_COLUMNS) and (
            now["hie_opt_out"] or not normalized.get("hieOptOut")
        )
        agreed = [label for name, label in _AGREEING_IDENTIFIERS if wanted[name] and wanted[name] == now[name]]
        answers.append((same, agreed))
    return answers


def patients_existing(*, customer_id: uuid.UUID, patient_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """The customer's patients among `patient_ids` (one primary-key probe each)."""
    return set(Patient.objects.filter(customer_id=customer_id, id__in=patient_ids).values_list("id", flat=True))


def _stored_text(value: object) -> object:
    """A value as it compares: dates as ISO text (rows hold them as text), the rest as they are."""
    return value.isoformat() if isinstance(value, datetime.date) else value


def facility_patients_absent(*, facility_id: uuid.UUID, rows: QuerySet[Any], column: str) -> QuerySet[Patient]:
    """The facility's patients that the `column` of none of `rows` names (e.g. a request's bulk rows and the
    patient each was applied to), oldest first. The exclusion is written per database (bulkdb.absent_from):
    an anti-join on PostgreSQL, a NOT IN over a list built once on SQLite."""
    return (
        Patient.objects.filter(patientfacility__facility_id=facility_id)
        .filter(absent_from(rows, column))
        .order_by("created_at", "id")
    )
