"""The PostgreSQL store: COPY and set-based SQL (tens of thousands of rows per second, where Django's
bulk_create spends most of its time quoting parameters). The apps' own PostgreSQL statements
(`<app>/store/postgres.py`) use `bound_cursor` from here."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from django.db import connection, connections, models
from django.db.models import Exists, Expression, OuterRef, QuerySet

from metriport_bulk.lib.bulkdb.fields import column_of, model_fields

VENDOR = "postgresql"


@contextmanager
def bound_cursor() -> Iterator[psycopg.Cursor[Any]]:
    """A cursor of Django's connection (same transaction) that binds parameters server-side.

    Django's psycopg cursors bind client-side, quoting every element of an array parameter into the SQL
    text; set-based statements over thousands of ids send them as one binary parameter instead. Errors
    still pass through Django's wrapper, so a broken connection is noticed and replaced."""
    connection.ensure_connection()
    with connection.wrap_database_errors, _BinaryParamsCursor(connection.connection) as cursor:
        yield cursor


class _BinaryParamsCursor(psycopg.Cursor[Any]):
    """Sends every %s parameter in binary: arrays then skip the per-element quoting of the text format."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
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
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _encode(fields: list[models.Field[Any, Any]], rows: Iterable[Sequence[Any]]) -> Iterable[list[Any]]:
    json_positions = [i for i, field in enumerate(fields) if isinstance(field, models.JSONField)]
    for row in rows:
        values = list(row)
        for i in json_positions:
            if values[i] is not None:
                values[i] = orjson.dumps(values[i]).decode()  # several times faster than json.dumps
        yield values


def copy_insert(model: type[models.Model], names: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    fields = model_fields(model, names)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column_of(field)) for field in fields)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN") as copy,
    ):
        for values in _encode(fields, rows):
            copy.write_row(values)


def update_by_id(model: type[models.Model], names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """One UPDATE ... FROM unnest(...): each column's values one array parameter, sent in binary. JSON goes
    as text (orjson) and is cast in the statement. Not a COPY into a temporary table and an UPDATE from it:
    that was four statements a call, and half of a Document Query batch's finish in the worker
    (docs/benchmarks.md, eleventh session)."""
    pk = model._meta.pk
    assert pk is not None
    fields = [pk, *model_fields(model, names)]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    arrays = ", ".join(f"%s::{'text' if isinstance(f, models.JSONField) else f.db_type(connection)}[]" for f in fields)
    aliases = [f"c{i}" for i in range(len(fields))]
    assignments = ", ".join(
        f"{quote(column_of(f))} = u.{alias}{'::jsonb' if isinstance(f, models.JSONField) else ''}"
        for f, alias in zip(fields[1:], aliases[1:], strict=True)
    )
    columns = [list(column) for column in zip(*_encode(fields, rows), strict=True)]
    with bound_cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET {assignments} FROM unnest({arrays}) AS u({', '.join(aliases)}) "
            f"WHERE t.{quote(column_of(pk))} = u.c0",
            columns,
        )


def exists_shared(queryset: models.QuerySet[Any]) -> bool:
    sql, params = queryset.values_list("pk")[:1].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} FOR SHARE", params)
        return cursor.fetchone() is not None


def lock_keys(keys: Sequence[int]) -> None:
    """Transaction-scoped advisory locks, taken in sorted order (no deadlock)."""
    with bound_cursor() as cursor:
        cursor.execute("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(%s::bigint[]) AS k", [sorted(keys)])


def estimated_row_count(model: type[models.Model], using: str) -> int | None:
    """The planner's estimate (pg_class.reltuples), or None when the table was never analyzed."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] >= 0 else None


def absent_from(rows: QuerySet[Any], column: str, outer: str) -> Expression:
    """NOT EXISTS, an anti-join. Not NOT IN: PostgreSQL runs `outer NOT IN (subquery)` as a subplan probed
    for every outer row once the subquery's values outgrow work_mem (a million-row import's)."""
    return ~Exists(rows.filter(**{column: OuterRef(outer)}))
