"""Starting Document Queries: one per patient, idempotent, in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from docqueries.backends import get_backend
from docqueries.services.dispatch import dispatch_on_commit
from docqueries.store import store


def document_queries_start(
    *,
    customer_id: uuid.UUID,
    patient_ids: Iterable[uuid.UUID | str],
    bulk_request_id: uuid.UUID | None = None,
    express: bool = False,
) -> int:
    """Records one Document Query per patient (idempotent per patient and bulk request) in the caller's
    transaction and dispatches them on commit. Returns how many were newly created.

    Patients of other customers and patients opted out of HIE exchange are ignored. Without a bulk
    request, a patient whose query is still processing gets no second one. The first step is due when the
    backend can answer it (the sandbox network answers after DOCQUERY_SANDBOX_DELAY_SECONDS: asking sooner
    would only cost a poll).

    `express` (a bulk request's first chunk, a single patient): the messages go to the express queue, so a
    small request's queries wait behind no big request's backlog (fair scheduling, SPEC §5)."""
    wanted = list(dict.fromkeys(str(patient_id) for patient_id in patient_ids))
    if not wanted:
        return 0
    delay = get_backend().first_step_after()
    express = express and settings.FAIR_SCHEDULING  # without fair scheduling there is one lane
    created = store().start(
        customer_id=customer_id,
        patient_ids=wanted,
        bulk_request_id=bulk_request_id,
        first_step=timezone.now() + timedelta(seconds=delay),
        express=express,
    )
    dispatch_on_commit(created, delay_seconds=delay, express=express)
    return len(created)


def on_patient_written(
    sender: object, *, customer_id: uuid.UUID, patient_ids: list[uuid.UUID], **kwargs: object
) -> None:
    """A patient created or updated through the API gets its Document Query at once (express queue)."""
    document_queries_start(customer_id=customer_id, patient_ids=patient_ids, express=True)
