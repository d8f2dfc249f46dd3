"""Every write of cohorts and their memberships (Metriport's cohort routes, and the bulk CSV's cohort columns).

Memberships are only ever added by an import (a roster file adds, never removes: a cohort left out of a row
stays); removing is an explicit call (DELETE /medical/v1/cohort/{id}/patient)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from cohorts.models import Cohort, CohortPolicy, PatientCohort, UnknownCohortRule, default_settings, name_key
from patients.models import Customer, Patient


class CohortError(Exception):
    """A customer-facing refusal; `status` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class StaleCohortETag(Exception):
    """If-Match names a version the cohort is no longer at."""


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _merge(merged.get(key) or {}, value) if isinstance(value, dict) else value
    return merged


def _name_taken(customer: Customer, name: str, *, exclude: uuid.UUID | None = None) -> bool:
    existing = Cohort.objects.filter(customer=customer, name_key=name_key(name))
    if exclude is not None:
        existing = existing.exclude(id=exclude)
    return existing.exists()


@transaction.atomic
def cohort_create(
    *,
    customer: Customer,
    name: str,
    description: str = "",
    color: str = "white",
    purpose_of_use: str = "treatment",
    settings: dict[str, Any] | None = None,
) -> Cohort:
    if _name_taken(customer, name):
        raise CohortError("A cohort with this name already exists (names are compared ignoring case).")
    try:
        with transaction.atomic():
            return Cohort.objects.create(
                customer=customer,
                name=name,
                description=description,
                color=color,
                purpose_of_use=purpose_of_use,
                settings=_merge(default_settings(), settings or {}),
            )
    except IntegrityError:  # a concurrent create of the same name won
        raise CohortError("A cohort with this name already exists (names are compared ignoring case).") from None


def _check_etag(cohort: Cohort, if_match: str | None) -> None:
    if if_match is None:
        return
    tags = {tag.strip().removeprefix("W/").strip('"') for tag in if_match.split(",")}
    if "*" not in tags and str(cohort.version) not in tags:
        raise StaleCohortETag()


@transaction.atomic
def cohort_update(*, cohort: Cohort, if_match: str | None, changes: dict[str, Any]) -> Cohort:
    """A partial update (Metriport's PUT/PATCH): only the given fields change; settings merge deeply."""
    locked = Cohort.objects.select_for_update().get(id=cohort.id)
    _check_etag(locked, if_match)
    if "name" in changes and _name_taken(locked.customer, changes["name"], exclude=locked.id):
        raise CohortError("A cohort with this name already exists (names are compared ignoring case).")
    for field in ("name", "description", "color", "purpose_of_use"):
        if field in changes:
            setattr(locked, field, changes[field])
    if "settings" in changes:
        locked.settings = _merge(locked.settings, changes["settings"])
    locked.version += 1
    locked.save()
    return locked


@transaction.atomic
def cohort_delete(*, cohort: Cohort) -> None:
    """Metriport's rule: a cohort with patients is not deleted (remove them first)."""
    locked = Cohort.objects.select_for_update().get(id=cohort.id)
    if locked.patient_links.exists():
        raise CohortError("Cannot delete a cohort with patients: remove its patients first.")
    locked.delete()


def _customer_patients(customer: Customer, patient_ids: Sequence[str]) -> list[uuid.UUID]:
    """The ids as the customer's patients; CohortError 404 naming the ones that are not."""
    wanted: dict[str, uuid.UUID | None] = {}
    for raw in patient_ids:
        try:
            wanted[raw] = uuid.UUID(str(raw))
        except ValueError:
            wanted[raw] = None
    valid = {value for value in wanted.values() if value is not None}
    found = set(Patient.objects.filter(customer=customer, id__in=valid).values_list("id", flat=True))
    unknown = [raw for raw, value in wanted.items() if value not in found]
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise CohortError(f"Patient(s) not found: {shown}.", status=404)
    return sorted(found)


def _link(cohort_ids_by_patient: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> int:
    links = [PatientCohort(patient_id=p, cohort_id=c) for p, c in cohort_ids_by_patient]
    created = PatientCohort.objects.bulk_create(links, ignore_conflicts=True, batch_size=2000)
    return len(created)


@transaction.atomic
def cohort_patients_add(*, cohort: Cohort, patient_ids: Sequence[str] | None, all_patients: bool) -> None:
    if all_patients:
        ids: Iterable[uuid.UUID] = Patient.objects.filter(customer_id=cohort.customer_id).values_list("id", flat=True)
    else:
        ids = _customer_patients(cohort.customer, patient_ids or [])
    _link((patient_id, cohort.id) for patient_id in ids)


@transaction.atomic
def cohort_patients_remove(*, cohort: Cohort, patient_ids: Sequence[str] | None, all_patients: bool) -> int:
    links: QuerySet[PatientCohort] = PatientCohort.objects.filter(cohort=cohort)
    if not all_patients:
        links = links.filter(patient_id__in=_customer_patients(cohort.customer, patient_ids or []))
    deleted, _ = links.delete()
    return deleted


@transaction.atomic
def patient_cohorts_add(*, patient: Patient, cohort_ids: Sequence[str]) -> None:
    """Metriport's addPatientToCohorts: the patient joins each cohort (already a member: unchanged)."""
    wanted: dict[str, uuid.UUID | None] = {}
    for raw in cohort_ids:
        try:
            wanted[raw] = uuid.UUID(str(raw))
        except ValueError:
            wanted[raw] = None
    valid = {value for value in wanted.values() if value is not None}
    found = set(Cohort.objects.filter(customer_id=patient.customer_id, id__in=valid).values_list("id", flat=True))
    unknown = [raw for raw, value in wanted.items() if value not in found]
    if unknown:
        raise CohortError(f"Cohort(s) not found: {', '.join(unknown[:10])}.", status=404)
    _link((patient.id, cohort_id) for cohort_id in sorted(found))


# --- the bulk CSV's cohort columns -------------------------------------------------------------------------


def cohort_policy_creates(*, customer_id: uuid.UUID) -> bool:
    """The customer's rule for an unknown cohort name in a bulk file: True = create it, False = reject the row."""
    rule = CohortPolicy.objects.filter(customer_id=customer_id).values_list("unknown_cohorts", flat=True).first()
    return rule == UnknownCohortRule.CREATE


def cohort_policy_set(*, customer_id: uuid.UUID, create_unknown: bool) -> None:
    rule = UnknownCohortRule.CREATE if create_unknown else UnknownCohortRule.REJECT
    CohortPolicy.objects.update_or_create(customer_id=customer_id, defaults={"unknown_cohorts": rule})


def cohorts_resolve(*, customer_id: uuid.UUID, names: Iterable[str], create_unknown: bool) -> dict[str, uuid.UUID]:
    """Cohort id by name key for the given (normalized) names; unknown names are created when `create_unknown`
    (named as the file wrote them, upper-cased), else left out of the answer."""
    keys = {name_key(name) for name in names if name.strip()}
    found = dict(Cohort.objects.filter(customer_id=customer_id, name_key__in=keys).values_list("name_key", "id"))
    if create_unknown:
        for key in sorted(keys - set(found)):
            with transaction.atomic():
                cohort, _ = Cohort.objects.get_or_create(
                    customer_id=customer_id, name_key=key, defaults={"name": key, "settings": default_settings()}
                )
            found[key] = cohort.id
    return found


def cohorts_assign(*, memberships: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> int:
    """Adds (patient id, cohort id) memberships, never removing one; answers how many were new."""
    return _link(memberships)


@dataclass(frozen=True)
class ImportCohorts:
    """What a bulk file's cohort cells are checked against while it is parsed: the customer's cohort names and
    rule. Under `reject` a row naming an unknown cohort fails (its cohort column is named, never the cell)."""

    creates_unknown: bool
    known: frozenset[str]

    def unknown_columns(self, cells: Iterable[tuple[str, str]]) -> list[str]:
        """The columns of (column, cell) pairs naming a cohort the customer does not have, when the rule is
        to reject; always empty when unknown cohorts are created."""
        if self.creates_unknown:
            return []
        return [column for column, cell in cells if cell.strip() and name_key(cell) not in self.known]


def cohorts_for_import(*, customer_id: uuid.UUID) -> ImportCohorts:
    known = frozenset(Cohort.objects.filter(customer_id=customer_id).values_list("name_key", flat=True))
    return ImportCohorts(creates_unknown=cohort_policy_creates(customer_id=customer_id), known=known)


def cohorts_join_by_name(*, customer_id: uuid.UUID, names_by_patient: Sequence[tuple[uuid.UUID, Sequence[str]]]) -> int:
    """Bulk apply: each patient joins the cohorts its row names (never leaving one it is in). Names unknown
    at this point are created under the customer's `create` rule; under `reject` such rows failed when the
    file was parsed, so a name still unknown here is one deleted meanwhile, and is skipped."""
    if not names_by_patient:
        return 0
    names = {name for _, row_names in names_by_patient for name in row_names}
    ids = cohorts_resolve(
        customer_id=customer_id, names=names, create_unknown=cohort_policy_creates(customer_id=customer_id)
    )
    return cohorts_assign(
        memberships=dict.fromkeys(
            (patient_id, ids[name_key(name)])
            for patient_id, row_names in names_by_patient
            for name in row_names
            if name_key(name) in ids
        )
    )
