"""What an `Idempotency-Key` answered first: one row per (customer, key), so concurrent retries of one key
meet at the unique constraint and exactly one of them does the work."""

from __future__ import annotations

from typing import ClassVar

from django.db import models

from patients.models import Customer


class IdempotencyKey(models.Model):
    """A key a customer sent, the operation it was for, a keyed hash of its parameters (never the
    parameters: a patient's body is PHI) and what it created. Rows older than the replay window are
    replaced on reuse and purged by the scheduler."""

    NOT_PHI_FIELDS: ClassVar = ("key",)  # the client's retry token (a UUID, by Metriport's SDKs)

    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    operation = models.CharField(max_length=50)  # "bulk_create", "bulk_confirm", "patient_create"
    fingerprint = models.CharField(max_length=64)  # HMAC-SHA256 of the operation's parameters
    resource_id = models.CharField(max_length=64)  # the bulk request or patient the first call answered
    status_code = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "key"], name="uniq_idempotency_key_per_customer")]

    def __str__(self) -> str:
        return f"{self.operation} {self.key}"
