"""Writes for customers, API keys, facilities and patients: the single-patient API of SPEC §1, and the
batches of bulk apply (patients_write_batch), under the same patient rules and the same match-key locks.
Only this module writes patient tables."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import Field, Model, ProtectedError
from django.http import Http404
from django.utils import timezone

from metriport_bulk.lib import bulkdb
from patients.columns import patient_fields
from patients.matching import match_key, shares_zip
from patients.models import ApiKey, Customer, Facility, Patient, PatientFacility
from patients.signals import patient_written
from patients.store import ChangedPatient, DemographicsSource, NewPatient, store

API_KEY_PREFIX = "mbk"


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    clear_key: str  # shown once, never stored


def _hash_key(clear_key: str) -> str:
    return hashlib.sha256(clear_key.encode()).hexdigest()


def customer_create(*, name: str) -> Customer:
    return Customer.objects.create(name=name.strip())


def customer_budget_lock(*, customer_id: uuid.UUID) -> None:
    """Locks the customer's row for the caller's transaction: checks of its Document Query budget run one at a
    time, each seeing the imports the ones before it let through (SQLite serializes writers already)."""
    list(Customer.objects.select_for_update().filter(id=customer_id).values_list("id", flat=True))


@transaction.atomic
def api_key_create(*, customer: Customer, name: str = "default") -> NewApiKey:
    prefix = secrets.token_hex(6)
    clear_key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(customer=customer, name=name, prefix=prefix, hashed_key=_hash_key(clear_key))
    return NewApiKey(api_key=api_key, clear_key=clear_key)


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The live key matching `raw_key`, or None. Constant-time comparison of the hashes."""
    parts = raw_key.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    api_key = ApiKey.objects.select_related("customer").filter(prefix=parts[1], revoked_at__isnull=True).first()
    if api_key is None or not hmac.compare_digest(api_key.hashed_key, _hash_key(raw_key.strip())):
        return None
    now = timezone.now()
    # Touch at most once a minute: a hot API key must not turn every request into a write.
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


def api_key_revoke(*, api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def facility_create(
    *, customer: Customer, name: str, npi: str, tin: str = "", active: bool = True, address: dict[str, Any]
) -> Facility:
    return Facility.objects.create(customer=customer, name=name, npi=npi, tin=tin, active=active, address=address)


@transaction.atomic
def facility_update(*, facility: Facility, if_match: str | None = None, **fields: Any) -> Facility:
    facility = _locked(Facility, facility.pk)
    _check_etag(facility, if_match)
    if _assign_changes(facility, fields):
        facility.save()  # a PUT that changes nothing keeps the eTag
    return facility


class FacilityInUse(Exception):
    """A facility that still has patients, or bulk requests (their history), cannot be deleted."""


@transaction.atomic
def facility_delete(*, facility: Facility, if_match: str | None = None) -> None:
    facility = _locked(Facility, facility.pk)
    _check_etag(facility, if_match)
    if PatientFacility.objects.filter(facility=facility).exists():
        raise FacilityInUse(f"Facility {facility.id} still has patients: delete or move them first.")
    try:
        with transaction.atomic():
            facility.delete()
    except ProtectedError as exc:  # its bulk requests (PROTECT) keep their facility for the record
        raise FacilityInUse(
            f"Facility {facility.id} has bulk requests, whose results name it: it cannot be deleted."
        ) from exc


# --- patients -------------------------------------------------------------------------------------------


def patient_match_keys_lock(customer_id: uuid.UUID, keys: Iterable[str]) -> None:
    """Transaction-scoped locks on the match keys, so two writers (imports or API calls) with the same person
    never both create it (PostgreSQL: advisory locks in sorted order; SQLite serializes writers already)."""
    customer = str(customer_id)
    bulkdb.lock_keys(
        int.from_bytes(hashlib.blake2b(f"{customer}|{key}".encode(), digest_size=8).digest(), "big", signed=True)
        for key in keys
    )


def patients_match_candidates(*, customer_id: uuid.UUID, keys: Iterable[str]) -> list[tuple[uuid.UUID, str, list[str]]]:
    """(id, match_key, zips) of the customer's patients with one of `keys`, oldest first."""
    return store().match_candidates(customer_id, sorted(set(keys)))


def patients_write_batch(
    *,
    customer_id: uuid.UUID,
    facility_id: uuid.UUID,
    created: Sequence[tuple[uuid.UUID, str, int, bool]],
    updated: Sequence[tuple[uuid.UUID, int, bool]],
    source: DemographicsSource,
) -> None:
    """Bulk apply's write, in the caller's transaction (which holds the match keys' locks): creates the
    patients `created` (id, match key, source, opted out) and overwrites `updated` (id, source, opts out) with
    their source's normalized values, and links them all to the facility. HIE opt-out is only ever set, never
    cleared: an import does not opt a patient back in."""
    now = timezone.now()
    # Created one microsecond apart, in row order: lists paginate by a cursor on created_at, and a cursor
    # cannot step through thousands of equal values.
    store().write_batch(
        customer_id=customer_id,
        facility_id=facility_id,
        created=[
            NewPatient(patient_id, key, source_id, now + timedelta(microseconds=i), opt_out)
            for i, (patient_id, key, source_id, opt_out) in enumerate(created)
        ],
        updated=[ChangedPatient(patient_id, source_id, opt_out) for patient_id, source_id, opt_out in updated],
        now=now,
        source=source,
    )


def patients_facilities_link(*, links: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
    """Links (patient id, facility id) pairs, in the caller's transaction; existing links stay as they are."""
    PatientFacility.objects.bulk_create(
        [PatientFacility(patient_id=patient_id, facility_id=facility_id) for patient_id, facility_id in links],
        ignore_conflicts=True,
        batch_size=2000,
    )


def patients_rekey(*, batch_size: int = 5000) -> int:
    """Recomputes every patient's match key with the current rule (patients.matching.match_key), in batches of
    `batch_size` patients taken in id order, each batch one transaction (memory and lock time stay flat at
    millions of patients). Never merges: patients that now share a key are reported by
    patients.selectors.patient_duplicate_groups. Returns the number of keys that changed."""
    changed = 0
    after: uuid.UUID | None = None
    while True:
        page = Patient.objects.order_by("id")
        if after is not None:
            page = page.filter(id__gt=after)
        batch = list(page.values_list("id", "first_name", "last_name", "dob", "gender_at_birth")[:batch_size])
        if not batch:
            return changed
        keys = [
            (patient_id, match_key(first_name=first, last_name=last, dob=dob.isoformat(), gender_at_birth=gender))
            for patient_id, first, last, dob, gender in batch
        ]
        with transaction.atomic():
            changed += store().rekey(keys)
        after = batch[-1][0]


def patient_find_match(*, customer_id: uuid.UUID, fields: dict[str, Any]) -> Patient | None:
    """The customer's oldest patient matching `fields` (patient_fields' output) by the bulk match rule."""
    candidates = Patient.objects.filter(customer_id=customer_id, match_key=fields["match_key"]).order_by(
        "created_at", "id"
    )
    return next((p for p in candidates if shares_zip(p.zips, fields["zips"])), None)


@dataclass(frozen=True)
class PatientWrite:
    patient: Patient
    created: bool


def _start_document_query(patient: Patient) -> None:
    """Asks for the patient's medical data (docqueries listens: it depends on patients, not back)."""
    if not patient.hie_opt_out:
        patient_written.send(sender=Patient, customer_id=patient.customer_id, patient_ids=[patient.id])


@transaction.atomic
def patient_create(*, customer: Customer, facility: Facility, normalized: dict[str, Any]) -> PatientWrite:
    """Creates the patient, or answers the one the bulk match rule finds (never a duplicate; opted out when the
    body says `hieOptOut: true`), links it to `facility` and starts its Document Query unless it is opted out:
    what a bulk row does."""
    fields = patient_fields(normalized)
    patient_match_keys_lock(customer.id, [fields["match_key"]])
    patient = patient_find_match(customer_id=customer.id, fields=fields)
    created = patient is None
    opt_out = bool(normalized.get("hieOptOut"))
    if patient is None:
        patient = Patient.objects.create(customer=customer, hie_opt_out=opt_out, **fields)
    elif opt_out and not patient.hie_opt_out:
        # The matched patient opts out, as a bulk row's would; a create never opts a patient back in.
        Patient.objects.filter(pk=patient.pk).update(hie_opt_out=True, updated_at=timezone.now())
        patient.refresh_from_db()
    PatientFacility.objects.get_or_create(patient=patient, facility=facility)
    _start_document_query(patient)
    return PatientWrite(patient=patient, created=created)


class StaleETag(Exception):
    """The If-Match eTag is not the object's current one (someone changed it since it was read)."""


_M = TypeVar("_M", bound=Model)


def _locked(model: type[_M], pk: object) -> _M:
    """The row, locked for this transaction; gone meanwhile (a concurrent delete) is a 404."""
    obj = model._default_manager.select_for_update().filter(pk=pk).first()
    if obj is None:
        raise Http404(f"{str(model._meta.verbose_name).capitalize()} {pk} not found.")
    return obj


def _assign_changes(obj: Model, fields: dict[str, Any]) -> bool:
    """Sets `fields` on `obj` (values as a request gives them: a date as text); True when one differed."""
    changed = False
    for name, value in fields.items():
        field = obj._meta.get_field(name)
        assert isinstance(field, Field)  # a column, never a relation
        value = field.to_python(value)
        if _without_empty(getattr(obj, name)) != _without_empty(value):
            setattr(obj, name, value)
            changed = True
    return changed


def _without_empty(value: Any) -> Any:
    """A JSON value with its empty optional strings (None or "") dropped: the API omits them either way, so
    `{"addressLine2": None}` and no addressLine2 are the same address."""
    if isinstance(value, dict):
        return {key: _without_empty(item) for key, item in value.items() if item is not None and item != ""}
    if isinstance(value, list):
        return [_without_empty(item) for item in value]
    return value


def _check_etag(obj: Facility | Patient, if_match: str | None) -> None:
    """Metriport's optimistic concurrency, checked on the row locked by the caller's transaction (so two
    writers holding the same eTag cannot both pass). If-Match uses the strong comparison (RFC 9110 §13.1.1):
    a weak tag (`W/"..."`) never matches; a tag may come quoted or, as Metriport's SDKs send it, bare."""
    from patients.serializers import etag_of

    if if_match is None:
        return
    tags = [tag.strip() for tag in if_match.split(",")]
    if "*" in tags:
        return
    strong = {tag.strip('"') for tag in tags if not tag.startswith("W/")}
    if etag_of(obj) not in strong:
        raise StaleETag()


@transaction.atomic
def patient_update(
    *, patient: Patient, facility: Facility, normalized: dict[str, Any], if_match: str | None = None
) -> Patient:
    """Replaces the patient's demographics (match key included: it is found by its new ones from now on)."""
    fields = patient_fields(normalized)
    # Match-key locks first, then the row: the order bulk apply takes them in (no deadlock with a chunk).
    patient_match_keys_lock(patient.customer_id, [patient.match_key, fields["match_key"]])
    patient = _locked(Patient, patient.pk)
    _check_etag(patient, if_match)
    if normalized.get("hieOptOut") is not None:  # absent from the body: unchanged
        fields["hie_opt_out"] = normalized["hieOptOut"]
    changed = _assign_changes(patient, fields)
    _, linked = PatientFacility.objects.get_or_create(patient=patient, facility=facility)
    if changed or linked:  # a PUT that changes nothing (facilityIds included) keeps the eTag
        patient.save()
    return patient


@transaction.atomic
def patient_delete(*, patient: Patient, if_match: str | None = None) -> None:
    """Deletes the patient with its facility links and Document Queries; bulk rows keep their outcome and
    lose the link (their result files were written already)."""
    patient = _locked(Patient, patient.pk)
    _check_etag(patient, if_match)
    patient.delete()


def patient_hie_opt_out_set(*, patient: Patient, opt_out: bool) -> Patient:
    Patient.objects.filter(pk=patient.pk).update(hie_opt_out=opt_out, updated_at=timezone.now())
    patient.refresh_from_db()
    return patient


# --- support staff --------------------------------------------------------------------------------------

SUPPORT_GROUP = "Support"  # made by migration patients 0002, PHI included (patients.view_phi)
SUPPORT_NO_PHI_GROUP = "Support without PHI"  # the same rights but view_phi, kept in step by support_user_create


class SupportUserRefused(Exception):
    """The user exists already, or the Support group is missing (the database is not migrated)."""


@transaction.atomic
def support_user_create(*, username: str, phi: bool, email: str = "") -> tuple[Any, str]:
    """A staff user in the Support group (`phi`: PHI included) or in "Support without PHI" (the Support group's
    permissions but `patients.view_phi`, refreshed from Support each time). Returns the user and its password,
    random, to be shown once."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user_model = get_user_model()
    support = Group.objects.filter(name=SUPPORT_GROUP).first()
    if support is None:
        raise SupportUserRefused(f'There is no "{SUPPORT_GROUP}" group: run `manage.py migrate` first.')
    if user_model.objects.filter(username=username).exists():
        raise SupportUserRefused(f"A user named {username!r} exists already.")
    group = support
    if not phi:
        group, _ = Group.objects.get_or_create(name=SUPPORT_NO_PHI_GROUP)
        group.permissions.set(support.permissions.exclude(codename="view_phi", content_type__app_label="patients"))
    password = secrets.token_urlsafe(15)
    user = user_model.objects.create_user(username, email=email, password=password, is_staff=True)
    user.groups.add(group)
    return user, password
