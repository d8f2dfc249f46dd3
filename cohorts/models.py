"""Cohorts: named, per-customer groups of patients (Metriport's cohorts), and the customer's rule for a
cohort name a bulk file uses that does not exist yet."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models

from patients.models import Customer, Patient

COHORT_COLORS = ("red", "green", "blue", "yellow", "purple", "orange", "pink", "brown", "gray", "black", "white")
PURPOSES_OF_USE = ("treatment", "operations")


def default_settings() -> dict:
    """Metriport's DEFAULT_SETTINGS (without its internal overrides): every monitoring switch off."""
    return {
        "monitoring": {
            "adt": {"enabled": False},
            "hie": {"enabled": False, "frequency": "monthly"},
            "pharmacy": {"notifications": False, "schedule": {"enabled": False, "frequency": "monthly"}},
            "laboratory": {"notifications": False},
        }
    }


NAME_KEY_MAX_LENGTH = 200  # the column's size: a name whose upper-cased form is longer is refused


def name_key(name: str) -> str:
    """How cohort names are compared: trimmed and upper-cased (Metriport's bulk import upper-cases the cohort
    cells), so "High Risk", "high risk " and "HIGH RISK" are one cohort."""
    return name.strip().upper()


class Cohort(models.Model):
    # A cohort's own fields name a group of the customer's ("High Risk"), not a person; who is in it is the
    # membership table, shown only with patient ids (docs/cohorts.md).
    NOT_PHI_FIELDS: ClassVar = ("name", "name_key", "description", "settings")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="cohorts")
    name = models.CharField(max_length=200)
    name_key = models.CharField(max_length=NAME_KEY_MAX_LENGTH, editable=False)
    description = models.TextField(blank=True, default="")
    color = models.CharField(max_length=10, choices=[(c, c) for c in COHORT_COLORS], default="white")
    purpose_of_use = models.CharField(max_length=12, choices=[(p, p) for p in PURPOSES_OF_USE], default="treatment")
    # Metriport's monitoring settings, stored and answered as given: this service runs no monitoring.
    settings = models.JSONField(default=default_settings)
    version = models.PositiveIntegerField(default=1)  # the eTag: +1 on each update
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name_key"]
        constraints = [models.UniqueConstraint(fields=["customer", "name_key"], name="uniq_cohort_name_per_customer")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.name = self.name.strip()
        self.name_key = name_key(self.name)
        super().save(*args, **kwargs)


class PatientCohort(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="cohort_links")
    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="patient_links")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cohort", "patient"], name="uniq_patient_cohort")]
        indexes = [models.Index(fields=["patient", "cohort"])]

    def __str__(self) -> str:
        return f"{self.patient_id} in {self.cohort_id}"


class UnknownCohortRule(models.TextChoices):
    CREATE = "create", "create the cohort"
    REJECT = "reject", "reject the row"


class CohortPolicy(models.Model):
    """A customer's rule for a cohort name in a bulk file that names no cohort of theirs; no row = reject."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="cohort_policy")
    unknown_cohorts = models.CharField(
        "unknown cohort names in a bulk file",
        max_length=10,
        choices=UnknownCohortRule.choices,
        default=UnknownCohortRule.REJECT,
    )

    class Meta:
        verbose_name = "cohort policy"
        verbose_name_plural = "cohort policies"

    def __str__(self) -> str:
        return f"{self.customer}: {self.get_unknown_cohorts_display()}"
