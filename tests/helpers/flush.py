"""How a transactional test's database is emptied after it: only the tables it wrote to, and not the reference
data every test shares.

Django's own teardown (TransactionTestCase._fixture_teardown: the `flush` command) truncates every table,
then re-creates the content types and permissions (post_migrate). That took 0.4 s after each of about 500
transactional tests on PostgreSQL, about a tenth of the suite's time: TRUNCATE makes new files for each of
the ~40 tables and their indexes, empty or not, and post_migrate queries and re-inserts every app's
permissions.

Here the tables that hold a row are found in one statement, and only those are flushed, with the statements
Django's `flush` runs for the database in use (TRUNCATE on PostgreSQL, DELETE on SQLite). The content types and
permissions are not flushed at all: post_migrate would write the same rows back. Everything else ends as
Django's flush leaves it, so no test can tell the difference; the Support group of the data migration is gone
after a transactional test either way (tests/admin/conftest.py re-makes it).
"""

from __future__ import annotations

from django.core.management.color import no_style
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import TransactionTestCase

# What post_migrate would re-create identically after a flush (auth_permission refers to the content types).
KEPT = frozenset({"django_content_type", "auth_permission"})


def tables_with_rows(connection: BaseDatabaseWrapper) -> list[str]:
    """The project's tables (every installed app's, as `flush` sees them) that hold at least one row, but KEPT."""
    tables = sorted(set(connection.introspection.django_table_names(only_existing=True, include_views=False)) - KEPT)
    if not tables:
        return []
    quote = connection.ops.quote_name
    probe = " UNION ALL ".join(f"SELECT %s WHERE EXISTS (SELECT 1 FROM {quote(table)})" for table in tables)
    with connection.cursor() as cursor:
        cursor.execute(probe, tables)
        return [table for (table,) in cursor.fetchall()]


def empty_database(connection: BaseDatabaseWrapper) -> list[str]:
    """Flushes the tables that hold rows (with the tables that refer to them: CASCADE); returns their names."""
    tables = tables_with_rows(connection)
    if tables:
        connection.ops.execute_sql_flush(connection.ops.sql_flush(no_style(), tables, allow_cascade=True))
    return tables


_django_teardown = TransactionTestCase._fixture_teardown


def _fixture_teardown(self: TransactionTestCase) -> None:
    if self.available_apps is not None or self.serialized_rollback:
        # Django's teardown has its own rules for these (no post_migrate, serialized data); none of ours sets them.
        _django_teardown(self)
        return
    for db_name in self._databases_names(include_mirrors=False):
        empty_database(connections[db_name])


def install() -> None:
    """Every transactional test of this run (pytest-django's `transactional_db` and `live_server` included) is
    emptied by empty_database instead of Django's flush."""
    TransactionTestCase._fixture_teardown = _fixture_teardown  # type: ignore[method-assign]
