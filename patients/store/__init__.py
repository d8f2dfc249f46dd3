"""patients' database seam: the patient statements that differ between PostgreSQL (postgres.py) and the ORM
(orm.py, the embedded SQLite default), chosen once by metriport_bulk.lib.bulkdb.choose. Only patients
writes patient tables; bulk apply hands it whole batches (patients.services.patients_write_batch)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from metriport_bulk.lib.bulkdb import choose
from patients.store import orm, postgres
from patients.store.records import ChangedPatient, NewPatient

__all__ = ["ChangedPatient", "DemographicsSource", "NewPatient", "PatientStore", "store"]


class DemographicsSource(Protocol):
    """Where a batch's normalized demographics are (bulk rows): a relation `(id, n)` for set-based SQL, or
    the values themselves for the ORM."""

    def relation(self) -> tuple[str, list[Any]]:
        """SQL of a relation with columns `id` and `n` (the normalized JSON), and its parameters."""
        ...

    def load(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The normalized values of the sources `ids`."""
        ...


class PatientStore(Protocol):
    def match_candidates(self, customer_id: uuid.UUID, keys: Sequence[str]) -> list[tuple[uuid.UUID, str, list[str]]]:
        """(id, match_key, zips) of the customer's patients with one of `keys`, oldest first."""
        ...

    def write_batch(
        self,
        *,
        customer_id: uuid.UUID,
        facility_id: uuid.UUID,
        created: Sequence[NewPatient],
        updated: Sequence[ChangedPatient],
        now: datetime,
        source: DemographicsSource,
    ) -> None:
        """Creates `created` and overwrites `updated` with their sources' values, links all to the facility.
        HIE opt-out is only ever set here, never cleared (an import never opts a patient back in). A patient of
        `created` whose id is taken already is overwritten as `updated` are: a bulk row's patient id is the
        row's own (bulkimport's row_patient_id), and a row re-run by a reprocess whose match key changed since
        (a normalizer fix, before rekey) finds no candidate but the patient it created itself."""
        ...

    def rekey(self, keys: Sequence[tuple[uuid.UUID, str]]) -> int:
        """Sets the match key of each (patient id, key) whose key differs; returns how many changed."""
        ...


def store() -> PatientStore:
    return choose(postgres=postgres, orm=orm)
