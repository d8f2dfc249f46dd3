"""docqueries' database seam: starting queries differs between PostgreSQL (postgres.py: one INSERT ...
SELECT over an array of patient ids) and the ORM (orm.py, the embedded SQLite default), chosen once by
metriport_bulk.lib.bulkdb.choose."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from docqueries.store import orm, postgres
from docqueries.store.claimed import ClaimedQuery
from metriport_bulk.lib.bulkdb import choose


class QueryStore(Protocol):
    def start(
        self,
        *,
        customer_id: uuid.UUID,
        patient_ids: list[str],
        bulk_request_id: uuid.UUID | None,
        first_step: datetime,
        express: bool,
    ) -> list[Any]:
        """Creates a processing query for each of the customer's patients among `patient_ids` that is not opted
        out (and, outside a bulk request, has no query processing); a (patient, bulk request) that has one
        already is skipped. `express`: its messages go to the express lane. Returns the ids created, in the
        caller's transaction."""
        ...

    def claim_batch(self, query_ids: list[str], *, due: datetime, lease_until: datetime) -> list[ClaimedQuery]:
        """Takes, for the caller's transaction, the queries among `query_ids` that are processing and due by
        `due` and that no other transaction holds, and returns them with their patients, as plain values
        (docqueries.store.claimed). Rows held by another worker are passed over, never waited for; the
        transaction's end releases them (done, or rolled back and due again at once). `lease_until`: where a
        store marks its claim in the row itself."""
        ...

    def processing_nearby(self, bulk_request_id: uuid.UUID, after: uuid.UUID | None) -> bool:
        """Whether a query of the bulk request is still processing among a few queries where one is likely
        while the request's queries run (PostgreSQL's ids are in start order, and queries run in it): the
        ones started next after query `after`, or without it the ones started last. A bound on the work,
        not the whole answer: False says nothing about the other queries of the request (a store with no
        cheaper probe than the whole request's answers False)."""
        ...


def store() -> QueryStore:
    return choose(postgres=postgres, orm=orm)
