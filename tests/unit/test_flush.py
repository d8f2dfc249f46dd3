"""The suite's teardown of transactional tests (tests/helpers/flush.py): it empties every table a test wrote to,
keeps the content types and permissions post_migrate would write back, and is the teardown in use."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import TransactionTestCase

from bulkimport.models import BulkRequest
from patients.models import Customer, Facility
from tests.helpers import flush
from tests.helpers.factories import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_suite_empties_transactional_tests_with_it():
    assert TransactionTestCase._fixture_teardown is flush._fixture_teardown


def test_it_empties_what_was_written_and_keeps_what_post_migrate_makes():
    content_types, permissions = ContentType.objects.count(), Permission.objects.count()
    assert content_types and permissions
    flush.empty_database(connection)  # what earlier tests in this process left (the migration's Support group)
    tenant = make_tenant("Flushed Clinic")
    BulkRequest.objects.create(customer=tenant.customer, facility=tenant.facility)
    Group.objects.create(name="Flushed group")

    written = flush.tables_with_rows(connection)
    for model in (Customer, Facility, BulkRequest, Group):
        assert model._meta.db_table in written
    assert not flush.KEPT & set(written)

    assert flush.empty_database(connection) == written
    assert flush.tables_with_rows(connection) == []
    assert not Customer.objects.exists() and not BulkRequest.objects.exists() and not Group.objects.exists()
    assert (ContentType.objects.count(), Permission.objects.count()) == (content_types, permissions)
    assert flush.empty_database(connection) == []  # nothing left to flush: no statement at all
