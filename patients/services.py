"""Writes for customers, API keys, facilities and patients (the single-patient API of SPEC §1; bulk apply
uses the same patient rules: `patient_fields` and `patient_match_keys_lock`)."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction
from django.http import Http404
from django.utils import timezone

from metriport_bulk.lib.bulkdb import bound_cursor
from patients.matching import match_key, shares_zip
from patients.models import ApiKey, Customer, Facility, Patient, PatientFacility

API_KEY_PREFIX = "mbk"


@dataclass(frozen=True)
class NewApiKey:
    api_key: ApiKey
    clear_key: str  # shown once, never stored


def _hash_key(clear_key: str) -> str:
    return hashlib.sha256(clear_key.encode()).hexdigest()


def customer_create(*, name: str) -> Customer:
    return Customer.objects.create(name=name.strip())


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
    *, customer: Customer, name: str, npi: str, tin: str = "", active: bool = True, address: dict
) -> Facility:
    return Facility.objects.create(customer=customer, name=name, npi=npi, tin=tin, active=active, address=address)


@transaction.atomic
def facility_update(*, facility: Facility, if_match: str | None = None, **fields) -> Facility:
    facility = _locked(Facility, facility.pk)
    _check_etag(facility, if_match)
    for key, value in fields.items():
        setattr(facility, key, value)
    facility.save()
    return facility


class FacilityInUse(Exception):
    """A facility that still has patients cannot be deleted."""


@transaction.atomic
def facility_delete(*, facility: Facility, if_match: str | None = None) -> None:
    facility = _locked(Facility, facility.pk)
    _check_etag(facility, if_match)
    if PatientFacility.objects.filter(facility=facility).exists():
        raise FacilityInUse(f"Facility {facility.id} still has patients: delete or move them first.")
    facility.delete()


# --- patients -------------------------------------------------------------------------------------------


def patient_fields(normalized: dict) -> dict:
    """The Patient columns a valid row's normalized values give (bulk rows and API bodies alike)."""
    addresses = normalized["addresses"]
    contacts = [
        {key: value for key, value in (("phone", phone), ("email", email)) if value}
        for phone, email in itertools.zip_longest(normalized.get("phones") or [], normalized.get("emails") or [])
    ]
    return {
        "external_id": normalized.get("externalId") or "",
        "first_name": normalized["firstName"],
        "last_name": normalized["lastName"],
        "dob": normalized["dob"],
        "gender_at_birth": normalized["genderAtBirth"],
        "ssn": normalized.get("ssn") or "",
        "drivers_license": normalized.get("driversLicense"),
        "addresses": addresses,
        "contacts": contacts,
        "zips": sorted({address["zip"] for address in addresses}),
        "match_key": match_key(
            first_name=normalized["firstName"],
            last_name=normalized["lastName"],
            dob=normalized["dob"],
            gender_at_birth=normalized["genderAtBirth"],
        ),
    }


def patient_match_keys_lock(customer_id, keys: Iterable[str]) -> None:
    """PostgreSQL: transaction-scoped advisory locks on the match keys, taken in sorted order (no deadlock),
    so two writers (imports or API calls) with the same person never both create it. SQLite serializes
    writers already."""
    if connection.vendor != "postgresql":
        return
    customer = str(customer_id)
    lock_ids = sorted(
        {
            int.from_bytes(hashlib.blake2b(f"{customer}|{key}".encode(), digest_size=8).digest(), "big", signed=True)
            for key in keys
        }
    )
    if lock_ids:
        with bound_cursor() as cursor:
            cursor.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k", [lock_ids])


def patient_find_match(*, customer_id, fields: dict) -> Patient | None:
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
    from docqueries.services import document_queries_start  # docqueries depends on patients, not back

    if not patient.hie_opt_out:
        document_queries_start(customer_id=patient.customer_id, patient_ids=[patient.id], express=True)


@transaction.atomic
def patient_create(*, customer: Customer, facility: Facility, normalized: dict) -> PatientWrite:
    """Creates the patient, or answers the one the bulk match rule finds (never a duplicate), links it to
    `facility` and starts its Document Query unless it is opted out: what a bulk row does."""
    fields = patient_fields(normalized)
    patient_match_keys_lock(customer.id, [fields["match_key"]])
    patient = patient_find_match(customer_id=customer.id, fields=fields)
    created = patient is None
    if patient is None:
        patient = Patient.objects.create(customer=customer, hie_opt_out=bool(normalized.get("hieOptOut")), **fields)
    PatientFacility.objects.get_or_create(patient=patient, facility=facility)
    _start_document_query(patient)
    return PatientWrite(patient=patient, created=created)


class StaleETag(Exception):
    """The If-Match eTag is not the object's current one (someone changed it since it was read)."""


def _locked(model, pk):
    """The row, locked for this transaction; gone meanwhile (a concurrent delete) is a 404."""
    obj = model.objects.select_for_update().filter(pk=pk).first()
    if obj is None:
        raise Http404(f"{model._meta.verbose_name.capitalize()} {pk} not found.")
    return obj


def _check_etag(obj, if_match: str | None) -> None:
    """Metriport's optimistic concurrency, checked on the row locked by the caller's transaction (so two
    writers holding the same eTag cannot both pass)."""
    from patients.serializers import etag_of

    if if_match is None:
        return
    tags = {tag.strip().removeprefix("W/").strip('"') for tag in if_match.split(",")}
    if "*" not in tags and etag_of(obj) not in tags:
        raise StaleETag()


@transaction.atomic
def patient_update(*, patient: Patient, facility: Facility, normalized: dict, if_match: str | None = None) -> Patient:
    """Replaces the patient's demographics (match key included: it is found by its new ones from now on)."""
    fields = patient_fields(normalized)
    # Match-key locks first, then the row: the order bulk apply takes them in (no deadlock with a chunk).
    patient_match_keys_lock(patient.customer_id, [patient.match_key, fields["match_key"]])
    patient = _locked(Patient, patient.pk)
    _check_etag(patient, if_match)
    for name, value in fields.items():
        setattr(patient, name, value)
    if normalized.get("hieOptOut") is not None:  # absent from the body: unchanged
        patient.hie_opt_out = normalized["hieOptOut"]
    patient.save()
    PatientFacility.objects.get_or_create(patient=patient, facility=facility)
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
