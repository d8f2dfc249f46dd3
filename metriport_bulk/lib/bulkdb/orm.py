"""The ORM store (the embedded SQLite default, any other database): the same operations as postgres.py
through Django's bulk methods. SQLite serializes writers (the embedded settings take the write lock when a
transaction begins), so what PostgreSQL needs locks or conflict handling for holds here by construction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, models
from django.db.models import Q, QuerySet

from metriport_bulk.lib.bulkdb.fields import column_of, model_fields

VENDOR = "orm"


def relax_commit() -> None:
    """Nothing to relax: SQLite's WAL with synchronous=NORMAL already commits without waiting for the disk."""


def copy_insert(model: type[models.Model], names: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    model._default_manager.bulk_create((model(**dict(zip(names, row, strict=True))) for row in rows), batch_size=1000)


def update_by_id(model: type[models.Model], names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """One prepared `UPDATE … WHERE pk = %s` run for every row (the driver's executemany), each value prepared
    by its field as the ORM would (JSON, UUIDs, datetimes). Not bulk_update: its CASE WHEN per column grows
    with the batch, so each row cost as much as the batch was long (mark_applied and the Document Queries'
    finish took 30 of the 50 s of a 5,000-row import on SQLite)."""
    fields = model_fields(model, names)
    pk = model._meta.pk
    assert pk is not None
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column_of(field))} = %s" for field in fields)
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(column_of(pk))} = %s"
    params = [
        [field.get_db_prep_save(value, connection) for field, value in zip(fields, row[1:], strict=True)]
        + [pk.get_db_prep_value(row[0], connection, prepared=False)]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def insert_ignoring_conflicts(
    model: type[models.Model], names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[Any]:
    """bulk_create(ignore_conflicts=True) and a lookup of which keys are now present (the caller's
    transaction holds the write lock on SQLite, so nothing else inserted them meanwhile)."""
    pk = model._meta.pk
    assert pk is not None
    pk_position = list(names).index(pk.attname)
    wanted = [row[pk_position] for row in rows]
    manager = model._default_manager
    before = set(manager.filter(pk__in=wanted).values_list("pk", flat=True))
    manager.bulk_create(
        (model(**dict(zip(names, row, strict=True))) for row in rows if row[pk_position] not in before),
        batch_size=1000,
        ignore_conflicts=True,
    )
    present = set(manager.filter(pk__in=wanted).values_list("pk", flat=True))
    return [key for key in wanted if key in present and key not in before]


def exists_shared(queryset: models.QuerySet[Any]) -> bool:
    return queryset.exists()


def lock_keys(keys: Sequence[int]) -> None:
    """Nothing to lock: the transaction holds SQLite's write lock from its start."""


def estimated_row_count(model: type[models.Model], using: str) -> int | None:
    """No cheap estimate here: None (the caller counts)."""
    return None


def absent_from(rows: QuerySet[Any], column: str, outer: str) -> Q:
    """`outer NOT IN (the rows' column)`: SQLite fills a temporary B-tree from the subquery once and probes it
    for each outer row. NOT EXISTS is a correlated subquery there, and without statistics (tables freshly
    written, never analyzed) SQLite reaches the rows through the index leading with the request, scanning
    all of a request's rows for each patient: the absent list of 5,000 patients against 5,000 rows took
    8.5 s, of 20,000 against 20,000 141 s. NULLs are left out of the subquery: one would make NOT IN
    unknown for every row."""
    return ~Q(**{f"{outer}__in": rows.filter(**{f"{column}__isnull": False}).values(column)})
