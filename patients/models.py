"""Tenancy (customers, API keys), facilities and patients."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models


class Customer(models.Model):
    """A tenant: an organization holding API keys. Every other object hangs off one."""

    NOT_PHI_FIELDS: ClassVar = ("name",)  # an organization's name

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """An API key, stored as a SHA-256 hash; the clear key is shown once at creation.

    Keys are 32 random bytes, so a fast hash is as strong as a slow one here; `prefix` (not secret) finds
    the row without scanning.
    """

    SECRET_FIELDS: ClassVar = ("hashed_key",)
    NOT_PHI_FIELDS: ClassVar = ("name",)  # the key's label ("default", "production")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, unique=True)
    hashed_key = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


class Facility(models.Model):
    NOT_PHI_FIELDS: ClassVar = ("name", "address")  # a clinic's name and street address

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="facilities")
    name = models.CharField(max_length=200)
    npi = models.CharField("NPI", max_length=10)
    tin = models.CharField("TIN", max_length=20, blank=True, default="")
    active = models.BooleanField(default=True)
    address = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "facilities"
        indexes = [models.Index(fields=["customer", "-created_at"])]

    def __str__(self) -> str:
        return self.name


class Patient(models.Model):
    """A patient in Metriport's shape. Lists (addresses, contacts, identifiers) are JSON: they are always read
    and written whole, and bulk creation of 100k patients stays one INSERT per chunk."""

    # Demographics, and what is derived from them (the match key, the zips). The one list of them: the admin's
    # PHI rules and the columns a write overwrites (patients.columns) read it.
    PHI_FIELDS: ClassVar = (
        "first_name",
        "last_name",
        "dob",
        "gender_at_birth",
        "ssn",
        "drivers_license",
        "addresses",
        "contacts",
        "zips",
        "match_key",
    )
    # The customer's own identifier for the patient: shown to every staff member in the patient list, the handle
    # support is given on the phone (a lookup on it tells nothing the list does not show).
    NOT_PHI_FIELDS: ClassVar = ("external_id",)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: both of the Meta's indexes lead with it.
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="patients", db_index=False)
    facilities = models.ManyToManyField(Facility, through="PatientFacility", related_name="patients")
    external_id = models.CharField(max_length=200, blank=True, default="")
    first_name = models.CharField(max_length=200)
    last_name = models.CharField(max_length=200)
    dob = models.DateField()
    gender_at_birth = models.CharField(max_length=1)
    ssn = models.CharField("SSN", max_length=9, blank=True, default="")
    drivers_license = models.JSONField(null=True, blank=True)
    addresses = models.JSONField(default=list)
    contacts = models.JSONField(default=list)
    # Opted out of health information exchange: no Document Query is started for the patient (SPEC §1
    # hie-opt-out, §8). A database default, so the bulk writers' INSERTs need not name it.
    hie_opt_out = models.BooleanField("HIE opt-out", default=False, db_default=False)
    # skeleton(first)|skeleton(last)|dob|gender (patients.matching.match_key, docs/identity.md): the demographic
    # match key, indexed per customer; zips decide.
    match_key = models.CharField(max_length=450, editable=False)
    zips = models.JSONField(default=list, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "match_key"]),
            models.Index(fields=["customer", "-created_at"]),
        ]
        permissions = [("view_phi", "Can see patient demographics (PHI)")]

    def __str__(self) -> str:
        return f"Patient {self.id}"


class PatientFacility(models.Model):
    # No index of its own: the unique (patient, facility) index leads with it.
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, db_index=False)
    facility = models.ForeignKey(Facility, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["patient", "facility"], name="uniq_patient_facility")]

    def __str__(self) -> str:
        return f"{self.patient_id} @ {self.facility_id}"


class PhiAccessLogQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("The PHI access log is append-only.")

    def delete(self):
        raise PermissionError("The PHI access log is append-only.")


class PhiAccessLog(models.Model):
    """Append-only: one row each time a staff member with `view_phi` opens a page showing PHI (who, when, which
    objects, which page). Rows are never changed nor deleted through the app; the user is PROTECTed (deactivate
    a staff account, do not delete it)."""

    class Action(models.TextChoices):
        VIEW = "view", "viewed an object"
        LIST = "list", "listed objects"
        DOWNLOAD = "download", "downloaded a file"

    PHI_FIELDS: ClassVar = ("query",)  # a PHI viewer's lookups (`?ssn=...`) are PHI themselves
    NOT_PHI_FIELDS: ClassVar = ("username", "object_ids", "path")  # who, which ids, which page

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey("auth.User", on_delete=models.PROTECT, related_name="+")
    username = models.CharField(max_length=150)  # as it was at the time of the access
    action = models.CharField(max_length=10, choices=Action.choices)
    model = models.CharField(max_length=100)  # "patients.patient", "bulkimport.bulkrow"...
    object_ids = models.JSONField(default=list)  # the ids shown, at most PHI_LOG_MAX_IDS
    object_count = models.IntegerField(default=0)  # how many were shown (object_ids may be cut)
    path = models.CharField(max_length=2000)
    query = models.CharField(max_length=2000, blank=True, default="")  # may hold a PHI viewer's lookups

    objects = PhiAccessLogQuerySet.as_manager()

    class Meta:
        verbose_name = "PHI access"
        verbose_name_plural = "PHI access log"
        indexes = [models.Index(fields=["user", "-at"])]

    def __str__(self) -> str:
        return f"{self.username} {self.action} {self.model} at {self.at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise PermissionError("The PHI access log is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The PHI access log is append-only.")
