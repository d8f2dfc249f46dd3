"""The one database seam. Every statement that differs between PostgreSQL (production) and the embedded
SQLite default sits behind a store: `postgres.py` (COPY, set-based SQL) beside `orm.py` (Django's bulk
methods), chosen once per process from the database's vendor, as lib/storage.py chooses S3 or local files.

This module holds the model-generic operations of the pipeline's hot paths. The apps' own statements
(bulkimport.store, patients.store, docqueries.store) are stores of the same shape and use `choose` too.
Both stores run in CI: the suite once on PostgreSQL, its pipeline folders once more on SQLite."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from types import ModuleType
from typing import Any, TypeVar

from django.db import connection, models
from django.db.models import Expression, F, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import LessThanOrEqual

from metriport_bulk.lib.bulkdb import orm, postgres

T = TypeVar("T")


# The time of a step that never comes: a NULL due time compares as this (due_by, and the claims written in SQL).
NEVER = datetime(9999, 12, 31, tzinfo=UTC)


def due_by(field: str, at: datetime) -> LessThanOrEqual:
    """`field <= at` for a claim that names its rows by primary key (`id__in=[...]`), in a form no index on
    `field` serves, so the rows are looked up by key. Given the bare column, PostgreSQL at times planned the
    partial index of due rows instead (its statistics taken when few were due) and scanned every due row,
    hundreds of thousands behind a million-row import, to find the batch's: a claim whose cost grew with
    the backlog. A NULL `field` is never due, as with the bare column."""
    return LessThanOrEqual(Coalesce(F(field), Value(NEVER, output_field=models.DateTimeField())), at)


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def choose(*, postgres: T, orm: T) -> T:
    """The implementation for this process's database (the default connection's vendor)."""
    return postgres if _vendor() == "postgresql" else orm


@cache
def _vendor() -> str:
    return connection.vendor


def _store() -> ModuleType:
    return choose(postgres=postgres, orm=orm)


def relax_commit() -> None:
    """This transaction's COMMIT returns before its WAL reaches disk (PostgreSQL: synchronous_commit off).

    A crash of the database server may then lose the last few hundred milliseconds of committed work, never
    consistency. Only for pipeline steps whose loss the sweeper repairs: a lost chunk is still pending and
    runs again, a lost parse or finish has a stale heartbeat and is resumed."""
    _store().relax_commit()


def copy_insert(model: type[models.Model], names: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Inserts `rows` (value tuples in the order of the field attnames `names`) in the caller's transaction."""
    _store().copy_insert(model, names, rows)


def update_by_id(model: type[models.Model], names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """UPDATE model SET names... for each (id, *values) in `rows`, in the caller's transaction."""
    if rows:
        _store().update_by_id(model, names, rows)


def exists_shared(queryset: models.QuerySet[Any]) -> bool:
    """Whether `queryset` (of one table) has a row, and that row held until the transaction ends by a shared
    lock (PostgreSQL: `FOR SHARE`): other holders of the same lock go on at once, an UPDATE of the row waits
    for them all. SQLite writes one transaction at a time: the plain read is exact there."""
    return bool(_store().exists_shared(queryset))


def lock_keys(keys: Iterable[int]) -> None:
    """Transaction-scoped locks on 64-bit keys, so two writers of the same thing take turns."""
    wanted = sorted(set(keys))
    if wanted:
        _store().lock_keys(wanted)


def estimated_row_count(model: type[models.Model], using: str = "default") -> int | None:
    """A cheap estimate of a table's rows, or None when the database has none (the caller then counts)."""
    result: int | None = _store().estimated_row_count(model, using)
    return result


def absent_from(rows: QuerySet[Any], column: str, *, outer: str = "id") -> Expression | Q:
    """A filter of the outer query: its rows whose `outer` is the `column` of none of `rows` (an
    uncorrelated queryset, e.g. a request's bulk rows). Each store writes it in the form its planner runs
    in time linear in the rows."""
    result: Expression | Q = _store().absent_from(rows, column, outer)
    return result
