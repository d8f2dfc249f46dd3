"""Set-based writes for the hot paths of the pipeline. On PostgreSQL they use COPY (tens of thousands of
rows per second, where Django's bulk_create spends most of its time quoting parameters); elsewhere they
fall back to the ORM so the embedded SQLite default behaves the same."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import orjson
import psycopg
from django.db import connection, models


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


@contextmanager
def bound_cursor() -> Iterator:
    """PostgreSQL: a cursor of Django's connection (same transaction) that binds parameters server-side.

    Django's psycopg cursors bind client-side, quoting every element of an array parameter into the SQL
    text; set-based statements over thousands of ids send them as one binary parameter instead. Errors
    still pass through Django's wrapper, so a broken connection is noticed and replaced."""
    connection.ensure_connection()
    with connection.wrap_database_errors, _BinaryParamsCursor(connection.connection) as cursor:
        yield cursor


class _BinaryParamsCursor(psycopg.Cursor):
    """Sends every %s parameter in binary: arrays then skip the per-element quoting of the text format."""

    def execute(self, query, params=None, **kwargs):
        binary_query = query.replace("%s", "%b")
        if not connection.queries_logged:
            return super().execute(binary_query, params, **kwargs)
        # Logged like Django's own debug cursor, so query-count assertions and the debug toolbar see it.
        start = time.monotonic()
        try:
            return super().execute(binary_query, params, **kwargs)
        finally:
            connection.queries_log.append({"sql": query, "time": f"{time.monotonic() - start:.3f}"})


def relax_commit() -> None:
    """PostgreSQL: this transaction's COMMIT returns before its WAL reaches disk (synchronous_commit off).

    A crash of the database server may then lose the last few hundred milliseconds of committed work, never
    consistency. Only for pipeline steps whose loss the sweeper repairs: a lost chunk is still pending and
    runs again, a lost parse or finish has a stale heartbeat and is resumed."""
    if _is_postgres():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _fields(model: type[models.Model], names: Sequence[str]) -> list[models.Field]:
    return [model._meta.get_field(name) for name in names]


def _encode(fields: list[models.Field], rows: Iterable[Sequence]) -> Iterable[list]:
    json_positions = [i for i, field in enumerate(fields) if isinstance(field, models.JSONField)]
    for row in rows:
        values = list(row)
        for i in json_positions:
            if values[i] is not None:
                values[i] = orjson.dumps(values[i]).decode()  # several times faster than json.dumps
        yield values


def _temp_name(kind: str, model: type[models.Model], names: Sequence[str]) -> str:
    """A session temp table per (model, column set): a session that updates other columns later (reprocess
    after apply) must not find a table of the wrong shape."""
    digest = hashlib.blake2b(",".join(names).encode(), digest_size=4).hexdigest()
    return f"_{kind}_{model._meta.db_table}_{digest}"[:63]


def copy_insert(model: type[models.Model], names: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Inserts `rows` (value tuples in the order of the field attnames `names`) in the caller's transaction."""
    fields = _fields(model, names)
    if not _is_postgres():
        model.objects.bulk_create((model(**dict(zip(names, row, strict=True))) for row in rows), batch_size=1000)
        return
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN") as copy,
    ):
        for values in _encode(fields, rows):
            copy.write_row(values)


def update_by_id(model: type[models.Model], names: Sequence[str], rows: Sequence[Sequence]) -> None:
    """UPDATE model SET names... for each (id, *values) in `rows`: one COPY into a temporary table and one
    UPDATE ... FROM on PostgreSQL; bulk_update elsewhere."""
    if not rows:
        return
    fields = _fields(model, names)
    if not _is_postgres():
        objects = []
        for row in rows:
            obj = model(pk=row[0])
            for name, value in zip(names, row[1:], strict=True):
                setattr(obj, name, value)
            objects.append(obj)
        model.objects.bulk_update(objects, list(names), batch_size=500)
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    temp = quote(_temp_name("upd", model, names))
    pk = model._meta.pk
    with connection.cursor() as cursor:
        definitions = ", ".join(f"{quote(f.column)} {f.db_type(connection)}" for f in [pk, *fields])
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {temp} ({definitions}) ON COMMIT DELETE ROWS")
        columns = ", ".join(quote(f.column) for f in [pk, *fields])
        with cursor.cursor.copy(f"COPY {temp} ({columns}) FROM STDIN") as copy:
            for values in _encode([pk, *fields], rows):
                copy.write_row(values)
        assignments = ", ".join(f"{quote(f.column)} = u.{quote(f.column)}" for f in fields)
        cursor.execute(
            f"UPDATE {table} AS t SET {assignments} FROM {temp} AS u WHERE t.{quote(pk.column)} = u.{quote(pk.column)}"
        )
        cursor.execute(f"DELETE FROM {temp}")  # the session may run more of these in one transaction


def insert_ignoring_conflicts(model: type[models.Model], names: Sequence[str], rows: Sequence[Sequence]) -> list:
    """INSERT ... ON CONFLICT DO NOTHING of `rows`; returns the primary keys of the rows actually inserted.

    PostgreSQL: COPY into a temporary table, then one INSERT ... SELECT ... RETURNING. Elsewhere:
    bulk_create(ignore_conflicts=True) and a lookup of which keys are now present (the caller's
    transaction holds the write lock on SQLite, so nothing else inserted them meanwhile)."""
    if not rows:
        return []
    pk = model._meta.pk
    pk_position = list(names).index(pk.attname)
    if not _is_postgres():
        wanted = [row[pk_position] for row in rows]
        before = set(model.objects.filter(pk__in=wanted).values_list("pk", flat=True))
        model.objects.bulk_create(
            (model(**dict(zip(names, row, strict=True))) for row in rows if row[pk_position] not in before),
            batch_size=1000,
            ignore_conflicts=True,
        )
        present = set(model.objects.filter(pk__in=wanted).values_list("pk", flat=True))
        return [pk for pk in wanted if pk in present and pk not in before]
    fields = _fields(model, names)
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    temp = quote(_temp_name("ins", model, names))
    columns = ", ".join(quote(f.column) for f in fields)
    with connection.cursor() as cursor:
        definitions = ", ".join(f"{quote(f.column)} {f.db_type(connection)}" for f in fields)
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {temp} ({definitions}) ON COMMIT DELETE ROWS")
        with cursor.cursor.copy(f"COPY {temp} ({columns}) FROM STDIN") as copy:
            for values in _encode(fields, rows):
                copy.write_row(values)
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {temp} ON CONFLICT DO NOTHING RETURNING {quote(pk.column)}"
        )
        inserted = [row[0] for row in cursor.fetchall()]
        cursor.execute(f"DELETE FROM {temp}")
    return inserted
