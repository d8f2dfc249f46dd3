"""Which fields hold PHI or secrets: each model says so once, in its own class, and everything else (the admin's
PHI rules, the guard on lookups, the tests walking every model) reads it from there.

    class Patient(models.Model):
        PHI_FIELDS = ("first_name", "last_name", ...)  # demographics, documents, a file's cells, payloads
        SECRET_FIELDS = ()                              # never looked up nor shown, to anybody
        NOT_PHI_FIELDS = ("external_id",)               # look like PHI (by name or kind) but are not: a decision

A field that looks like PHI (tests/admin/test_phi_declarations.py says what looks like it) and is declared
neither way fails that test: a new field counts as PHI until someone decides.
"""

from __future__ import annotations

from django.db.models import Model


def _declared(model: type[Model], attribute: str) -> frozenset[str]:
    return frozenset(getattr(model, attribute, ()))


def phi_fields(model: type[Model]) -> frozenset[str]:
    return _declared(model, "PHI_FIELDS")


def secret_fields(model: type[Model]) -> frozenset[str]:
    return _declared(model, "SECRET_FIELDS")


def not_phi_fields(model: type[Model]) -> frozenset[str]:
    return _declared(model, "NOT_PHI_FIELDS")
