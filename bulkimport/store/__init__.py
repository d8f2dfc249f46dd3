"""bulkimport's database seam: the statements on bulk rows that differ between PostgreSQL (postgres.py:
set-based SQL reading the rows' normalized JSON inside the database) and the ORM (orm.py, the embedded
SQLite default), chosen once by metriport_bulk.lib.bulkdb.choose."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from bulkimport.store import orm, postgres
from metriport_bulk.lib.bulkdb import choose

# (row id, number, match key, address zips, hieOptOut, planned action, planned patient, matchedOn, duplicate
# of row, drifted) of a pending row.
PendingValues = tuple[int, int, str, list[str], Any, str, Any, str, int | None, Any]
# (row id, number, match key) of a pending row, for the plan.
PlanValues = tuple[int, int, str]
# (raw cells as JSON text, patient id, status, reason, action, opted out, its Document Query's status or
# None, that query's document count or None, error codes, matched patient id, matchedOn, its facilityId cell
# or None) of a row, for the result file.
ResultValues = tuple[str, Any, str, str, str, Any, str | None, Any, str, Any, str, str | None]
# (row id, action, patient id, matched patient id, matchedOn) of an applied row.
AppliedValues = tuple[int, str, uuid.UUID, uuid.UUID | None, str]


class BulkStore(Protocol):
    def pending_rows(self, request_id: uuid.UUID, *, first: int, last: int, limit: int) -> list[PendingValues]:
        """The pending rows numbered first..last, in row order (at most `limit`)."""
        ...

    def plan_rows(self, request_id: uuid.UUID, *, after: int, limit: int) -> list[PlanValues]:
        """The next `limit` pending rows numbered above `after`, in row order."""
        ...

    def row_zips(self, request_id: uuid.UUID, rows: Sequence[tuple[int, int]]) -> dict[int, list[str]]:
        """Row id -> the zips of its addresses, for rows given as (id, number) in row order."""
        ...

    def mark_applied(self, request_id: uuid.UUID, rows: Sequence[AppliedValues], numbers: tuple[int, int]) -> None:
        """Rows, all numbered within `numbers`, become succeeded."""
        ...

    def result_rows(self, request_id: uuid.UUID) -> Iterator[ResultValues]:
        """Every row of the request with its patient's Document Query of the request, in row order."""
        ...


def store() -> BulkStore:
    return choose(postgres=postgres, orm=orm)
