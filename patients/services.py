"""Writes for customers, API keys and facilities."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from patients.models import ApiKey, Customer, Facility

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


def facility_update(*, facility: Facility, **fields) -> Facility:
    for key, value in fields.items():
        setattr(facility, key, value)
    facility.save()
    return facility
