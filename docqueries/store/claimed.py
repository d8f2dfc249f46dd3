"""A claimed Document Query as a run step reads it: plain values of the query and of its patient, not model
instances. At a set-based backend's 1,000 queries a batch, building a query's and its patient's model
instances (every field decoded, Django's init signals) took 58 % of a worker's time in the medical-data phase
(`bench/pipeline.py` under py-spy), more than the statements, the backend and the finish together."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from patients.models import Patient

# What a store's claim returns of each query, in this order (values_list).
QUERY_FIELDS = ("id", "customer_id", "patient_id", "bulk_request_id", "started_at", "attempts")
_PATIENT_FIELDS = ("id", "external_id", "first_name", "last_name", "dob", "gender_at_birth", "addresses")


@dataclass(frozen=True, slots=True)
class ClaimedPatient:
    """What a backend call and the webhook need of the query's patient; PHI: never logged."""

    id: uuid.UUID
    external_id: str
    first_name: str
    last_name: str
    dob: date
    gender_at_birth: str
    addresses: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ClaimedQuery:
    id: uuid.UUID
    customer_id: uuid.UUID
    patient_id: uuid.UUID
    bulk_request_id: uuid.UUID | None
    started_at: datetime
    attempts: int
    patient: ClaimedPatient


def with_patients(queries: Iterable[tuple[Any, ...]]) -> list[ClaimedQuery]:
    """The claimed queries (QUERY_FIELDS values), each with its patient, read in one statement by primary
    key. A query whose patient is gone (deleted meanwhile, its query with it) is left out."""
    rows = list(queries)
    if not rows:
        return []
    patient_ids = {row[2] for row in rows}
    patients = {
        values[0]: ClaimedPatient(*values)
        for values in Patient.objects.filter(id__in=patient_ids).values_list(*_PATIENT_FIELDS)
    }
    return [
        ClaimedQuery(query_id, customer_id, patient_id, request_id, started_at, attempts, patients[patient_id])
        for query_id, customer_id, patient_id, request_id, started_at, attempts in rows
        if patient_id in patients
    ]
