"""Each model declares its PHI fields (and secrets) once, in its class (metriport_bulk.lib.phi): a field that
looks like PHI and is declared neither way is a failure here, so a new column holding names, cells, documents,
payloads or free text counts as undecided until someone decides."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.db import models

from metriport_bulk.admin_toolkit import PhiFieldsMixin
from metriport_bulk.lib import phi
from patients.columns import PATIENT_COLUMNS
from patients.models import Patient

# Words that, anywhere in a field's name, suggest a person's data, a file's content or a secret.
PHI_LOOKING_WORDS = frozenset(
    {
        "name", "dob", "birth", "gender", "sex", "ssn", "social", "license", "address", "addresses", "street",
        "city", "zip", "zips", "postal", "phone", "email", "contact", "contacts", "raw", "normalized", "cells",
        "header", "document", "documents", "body", "payload", "query", "note", "notes", "text", "reason",
        "message", "error", "warnings", "key", "token", "secret", "password", "hashed", "url", "path", "ids",
    }
)  # fmt: skip
# Kinds of field that hold anything: free text, JSON, bytes.
PHI_LOOKING_KINDS = (models.JSONField, models.BinaryField, models.TextField)


def project_models() -> list[type[models.Model]]:
    """The models of the project's own apps: under BASE_DIR, and not installed packages (a virtualenv inside
    the checkout, as `make setup` creates it, is under BASE_DIR too)."""
    root = Path(settings.BASE_DIR).resolve()
    installed = Path(sys.prefix).resolve()

    def ours(config) -> bool:
        path = Path(config.path).resolve()
        return path.is_relative_to(root) and not path.is_relative_to(installed) and "site-packages" not in path.parts

    return [model for config in apps.get_app_configs() if ours(config) for model in config.get_models()]


def looks_like_phi(field: models.Field) -> bool:
    name = field.name.lower()
    return any(word in name for word in PHI_LOOKING_WORDS) or isinstance(field, PHI_LOOKING_KINDS)


def own_fields(model: type[models.Model]) -> list[models.Field]:
    return [field for field in model._meta.get_fields() if field.concrete and not field.is_relation]


def test_the_walk_sees_every_app():
    labels = {model._meta.app_label for model in project_models()}
    assert labels >= {"patients", "bulkimport", "docqueries", "webhooks", "cohorts", "idempotency"}
    # Installed packages' models (Django's, axes', django_dramatiq's) are theirs to declare, not ours.
    assert labels.isdisjoint({"admin", "auth", "sessions", "axes", "django_dramatiq"})


@pytest.mark.parametrize("model", project_models(), ids=lambda model: model._meta.label_lower)
def test_every_phi_looking_field_is_declared_either_way(model):
    declared = phi.phi_fields(model) | phi.secret_fields(model) | phi.not_phi_fields(model)
    undecided = [field.name for field in own_fields(model) if looks_like_phi(field) and field.name not in declared]
    assert undecided == [], f"{model._meta.label}: declare {undecided} in PHI_FIELDS, SECRET_FIELDS or NOT_PHI_FIELDS"


@pytest.mark.parametrize("model", project_models(), ids=lambda model: model._meta.label_lower)
def test_declarations_name_real_fields_once(model):
    names = {field.name for field in own_fields(model)}
    kinds = [phi.phi_fields(model), phi.secret_fields(model), phi.not_phi_fields(model)]
    for declared in kinds:
        assert declared <= names, f"{model._meta.label}: {sorted(declared - names)} are not fields"
    assert not (kinds[0] & kinds[1]) and not (kinds[0] & kinds[2]) and not (kinds[1] & kinds[2])


def _field(field: models.Field, name: str) -> models.Field:
    field.set_attributes_from_name(name)
    return field


def test_the_heuristic_catches_an_undeclared_field():
    assert looks_like_phi(_field(models.CharField(max_length=20), "nickname"))
    assert looks_like_phi(_field(models.TextField(), "comments"))  # free text, whatever its name
    assert looks_like_phi(_field(models.JSONField(), "extras"))
    assert not looks_like_phi(_field(models.IntegerField(), "count"))


def test_patient_columns_and_the_admin_read_the_one_declaration():
    assert set(PATIENT_COLUMNS) == {"external_id"} | set(Patient.PHI_FIELDS) - {"match_key"}
    from django.contrib import admin

    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, PhiFieldsMixin):
            assert set(phi.phi_fields(model)) <= set(model_admin.phi_fields)
