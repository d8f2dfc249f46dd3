"""The end of a Document Query: processing -> completed/failed, its `medical.document-download` webhook,
and word to whoever waits on it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from docqueries.models import DocumentQuery, QueryStatus
from docqueries.serializers import document_dto
from docqueries.signals import document_queries_ended
from docqueries.store.claimed import ClaimedQuery
from metriport_bulk.lib.bulkdb import update_by_id
from webhooks import types
from webhooks.services import webhook_message_create, webhook_messages_create

# A claimed query and how it ended: (query, status, documents, error).
Ended = tuple[ClaimedQuery, str, list[dict[str, Any]], str]


def finish_one(
    query: ClaimedQuery,
    *,
    status: str,
    attempts: int,
    documents: list[dict[str, Any]] | None = None,
    error: str = "",
) -> bool:
    """processing -> completed/failed (one conditional UPDATE) and the webhook, in one transaction."""
    documents = documents or []
    with transaction.atomic():
        finished = DocumentQuery.objects.filter(id=query.id, status=QueryStatus.PROCESSING).update(
            status=status,
            finished_at=timezone.now(),
            documents=documents,
            error=error[:300],
            next_attempt_at=None,
            attempts=attempts,
        )
        if finished:
            webhook_message_create(
                customer_id=query.customer_id,
                message_type=types.DOCUMENT_DOWNLOAD,
                request_id=str(query.id),
                data=_webhook_data(query, status, documents),
                ordered=False,
            )
            _announce_ended([query])
    return bool(finished)


def finish_many(ended: list[Ended], *, finished_at: datetime) -> None:
    """processing -> completed/failed for claimed queries, and their webhooks, in the caller's transaction."""
    if not ended:
        return
    update_by_id(
        DocumentQuery,
        ("status", "finished_at", "documents", "error", "next_attempt_at", "attempts"),
        [
            (q.id, status, finished_at, documents, error[:300], None, q.attempts + 1)
            for q, status, documents, error in ended
        ],
    )
    for customer_id, items in _notices(ended).items():
        webhook_messages_create(
            customer_id=customer_id, message_type=types.DOCUMENT_DOWNLOAD, items=items, ordered=False
        )
    _announce_ended([query for query, *_ in ended])


def _notices(ended: list[Ended]) -> dict[uuid.UUID, list[tuple[str, dict[str, Any]]]]:
    """The `medical.document-download` messages of ended queries, per customer, as (request id, data): the
    queries of one bulk request share messages of up to WEBHOOK_DOCUMENT_BATCH_SIZE patients (Metriport's
    `patients` array), with the bulk request's id as `meta.requestId`; a query of its own (started through
    the API) has a message of its own, with its id. Each ended query is in exactly one message."""
    size = max(1, int(settings.WEBHOOK_DOCUMENT_BATCH_SIZE))
    notices: dict[uuid.UUID, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    by_request: dict[tuple[uuid.UUID, uuid.UUID], list[dict[str, Any]]] = defaultdict(list)
    for query, status, documents, _ in ended:
        if query.bulk_request_id is None:
            notices[query.customer_id].append((str(query.id), _webhook_data(query, status, documents)))
        else:
            by_request[(query.customer_id, query.bulk_request_id)].append(
                _webhook_patient(query, status=status, documents=documents)
            )
    for (customer_id, request_id), patients in by_request.items():
        notices[customer_id] += [
            (str(request_id), {"patients": patients[start : start + size]}) for start in range(0, len(patients), size)
        ]
    return notices


def _webhook_data(query: ClaimedQuery, status: str, documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The `medical.document-download` payload (besides meta) of one ended query."""
    return {"patients": [_webhook_patient(query, status=status, documents=documents)]}


def _announce_ended(queries: list[ClaimedQuery]) -> None:
    """Tells whoever waits on them (a bulk request waiting for its medical data) on commit, by signal: the
    arrow stays bulkimport -> docqueries."""
    latest: dict[uuid.UUID, uuid.UUID] = {}
    for query in queries:
        if query.bulk_request_id is not None:
            latest[query.bulk_request_id] = max(latest.get(query.bulk_request_id, query.id), query.id)
    if latest:
        transaction.on_commit(
            lambda: document_queries_ended.send(sender=DocumentQuery, bulk_request_ids=set(latest), latest=latest)
        )


def _webhook_patient(query: ClaimedQuery, *, status: str, documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One entry of `patients` exactly as @metriport/shared's schema has it: `externalId` omitted when the
    patient has none, documents as DTOs (`mimeType`)."""
    entry: dict[str, Any] = {"patientId": str(query.patient_id)}
    if query.patient.external_id:
        entry["externalId"] = query.patient.external_id
    entry["status"] = status
    entry["documents"] = [document_dto(document) for document in documents]
    return entry
