"""Fixtures of the admin tests: staff users (support with PHI, staff without it, an operator) and bulk requests
run through the real services in this thread."""

from __future__ import annotations

import importlib

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from bulkimport.models import BulkRequest
from tests.helpers.admin import logged_in, make_staff
from tests.helpers.bulk import run_bulk, sample_bytes


@pytest.fixture
def support_group(db) -> Group:
    """The data migration's Support group. A transactional test's flush empties the database (content types
    and permissions come back by post_migrate, the group does not): re-made here, idempotently."""
    from django.contrib.auth.models import Permission

    migration = importlib.import_module("patients.migrations.0002_support_group")
    return migration.fill_support_group(Group, Permission)


@pytest.fixture
def no_phi_group(support_group) -> Group:
    """Support's view rights without `patients.view_phi`."""
    group = Group.objects.create(name="Support without PHI")
    group.permissions.set(support_group.permissions.exclude(codename="view_phi"))
    return group


@pytest.fixture
def support_user(support_group) -> User:
    return make_staff("support", groups=(support_group,))


@pytest.fixture
def no_phi_user(no_phi_group) -> User:
    return make_staff("nophi", groups=(no_phi_group,))


@pytest.fixture
def operator(db) -> User:
    return make_staff("operator", superuser=True)


@pytest.fixture
def support_client(support_user) -> Client:
    return logged_in(support_user)


@pytest.fixture
def no_phi_client(no_phi_user) -> Client:
    return logged_in(no_phi_user)


@pytest.fixture
def operator_client(operator) -> Client:
    return logged_in(operator)


@pytest.fixture
def completed_request(tenant) -> BulkRequest:
    """A completed 120-row request, about a fifth of its rows invalid (seeded: always the same rows)."""
    return run_bulk(tenant, sample_bytes(120, invalid_ratio=0.2, seed=11))
