"""docqueries' statements through the ORM (the embedded SQLite default)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.utils import timezone

from docqueries.models import DocumentQuery, QueryStatus
from docqueries.store.claimed import QUERY_FIELDS, ClaimedQuery, with_patients
from metriport_bulk.lib.bulkdb import due_by
from metriport_bulk.lib.bulkdb import orm as generic
from patients.models import Patient

START_COLUMNS = (
    "id", "customer_id", "patient_id", "bulk_request_id", "status", "started_at", "documents", "attempts",
    "next_attempt_at", "error", "express",
)  # fmt: skip


def start(
    *,
    customer_id: uuid.UUID,
    patient_ids: list[str],
    bulk_request_id: uuid.UUID | None,
    first_step: datetime,
    express: bool,
) -> list[Any]:
    patients = set(
        Patient.objects.filter(customer_id=customer_id, id__in=patient_ids, hie_opt_out=False).values_list(
            "id", flat=True
        )
    )
    if bulk_request_id is None:
        # Outside a bulk request nothing unique protects against a second concurrent query: filter first.
        processing = DocumentQuery.objects.filter(patient_id__in=patients, status=QueryStatus.PROCESSING)
        patients -= set(processing.values_list("patient_id", flat=True))
    if not patients:
        return []
    # The columns after the ids, the same for every query this call starts.
    fixed: tuple[Any, ...] = (QueryStatus.PROCESSING, timezone.now(), [], 0, first_step, "", express)
    # ON CONFLICT DO NOTHING: a concurrent start of the same (patient, bulk request) wins quietly; what comes
    # back is exactly what this call created.
    return generic.insert_ignoring_conflicts(
        DocumentQuery,
        START_COLUMNS,
        [(uuid.uuid4(), customer_id, patient_id, bulk_request_id, *fixed) for patient_id in sorted(patients, key=str)],
    )


def claim_batch(query_ids: list[str], *, due: datetime, lease_until: datetime) -> list[ClaimedQuery]:
    """SQLite has no row locks: the claim is an UPDATE that moves each row's next step past `lease_until` (a
    time of this call's own), which takes the database's write lock, and the rows holding it are this
    call's."""
    DocumentQuery.objects.filter(
        due_by("next_attempt_at", due), id__in=query_ids, status=QueryStatus.PROCESSING
    ).update(next_attempt_at=lease_until)
    return with_patients(
        DocumentQuery.objects.filter(id__in=query_ids, next_attempt_at=lease_until).values_list(*QUERY_FIELDS)
    )


def processing_nearby(bulk_request_id: uuid.UUID, after: uuid.UUID | None) -> bool:
    """Nothing to look at first: SQLite changes a row's index entries in place, so the probe of every query of
    the request reads no entry of an ended one (and these ids are random, not in start order)."""
    return False
