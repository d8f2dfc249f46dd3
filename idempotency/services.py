"""Idempotent calls (`Idempotency-Key` on POST …/bulk, …/confirm and POST /medical/v1/patient).

The key's row is inserted in the same transaction as the work it guards: a concurrent retry's INSERT waits
on the unique (customer, key) index until the first transaction ends, then fails (the first committed: its
answer is replayed) or goes ahead (the first rolled back: nothing was remembered). Only a successful answer
is remembered; an error rolls the key back with the rest, so a retry after a 4xx runs again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from idempotency.models import IdempotencyKey
from patients.models import Customer

MAX_KEY_LENGTH = 255
# Visible ASCII, no spaces: what a UUID, a ULID or any token a client generates is made of.
_KEY_PATTERN = re.compile(r"[\x21-\x7e]+")


class IdempotencyKeyInvalid(Exception):
    """A malformed header (HTTP 400)."""


class IdempotencyKeyReused(Exception):
    """The key was used with other parameters or for another operation within the window (HTTP 422)."""


@dataclass(frozen=True)
class Outcome:
    resource_id: str
    status_code: int
    replayed: bool


def idempotency_key_parse(value: str | None) -> str | None:
    """The header's key, None when the header is absent; IdempotencyKeyInvalid when it is malformed."""
    if value is None:
        return None
    if not value:
        raise IdempotencyKeyInvalid("The Idempotency-Key header is empty: send 1 to 255 visible ASCII characters.")
    if len(value) > MAX_KEY_LENGTH:
        raise IdempotencyKeyInvalid(
            f"The Idempotency-Key header is {len(value)} characters long: at most {MAX_KEY_LENGTH} are allowed."
        )
    if not _KEY_PATTERN.fullmatch(value):
        raise IdempotencyKeyInvalid(
            "The Idempotency-Key header holds a space, a control or a non-ASCII character: use visible ASCII "
            "only (a UUID is a good key)."
        )
    return value


def fingerprint_of(operation: str, parameters: Any) -> str:
    """A keyed hash of the parameters: equal parameters give equal fingerprints, and a stored one reveals
    nothing of a patient's demographics."""
    canonical = json.dumps([operation, parameters], sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(settings.SECRET_KEY.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def _window_start() -> Any:
    return timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_WINDOW_SECONDS)


@transaction.atomic
def idempotent_call(
    *, customer: Customer, key: str, operation: str, parameters: Any, run: Callable[[], tuple[str, int]]
) -> Outcome:
    """Runs `run` (which answers the created resource's id and the HTTP status) once per (customer, key)
    within the window; a retry with the same parameters answers the first outcome, with other parameters
    raises IdempotencyKeyReused. `run` joins this transaction: if it raises, the key is not remembered."""
    fingerprint = fingerprint_of(operation, parameters)
    # A key older than the window is free again.
    IdempotencyKey.objects.filter(customer=customer, key=key, created_at__lt=_window_start()).delete()
    try:
        with transaction.atomic():
            row = IdempotencyKey.objects.create(
                customer=customer, key=key, operation=operation, fingerprint=fingerprint, resource_id="", status_code=0
            )
    except IntegrityError:
        first = IdempotencyKey.objects.get(customer=customer, key=key)
        if first.operation != operation:
            raise IdempotencyKeyReused(
                f"This Idempotency-Key was used for another operation ({first.operation}) in the last "
                f"{settings.IDEMPOTENCY_WINDOW_SECONDS // 3600} h: use a new key for each new call."
            ) from None
        if first.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with other parameters in the last "
                f"{settings.IDEMPOTENCY_WINDOW_SECONDS // 3600} h: a retry must repeat the first call's parameters "
                "exactly; use a new key for a new call."
            ) from None
        return Outcome(resource_id=first.resource_id, status_code=first.status_code, replayed=True)
    resource_id, status_code = run()
    IdempotencyKey.objects.filter(pk=row.pk).update(resource_id=resource_id, status_code=status_code)
    return Outcome(resource_id=resource_id, status_code=status_code, replayed=False)


def idempotency_keys_purge() -> int:
    """Scheduler job: forget keys older than the window."""
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=_window_start()).delete()
    return deleted
