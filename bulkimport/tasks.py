"""Dramatiq actors of the bulk pipeline: thin, ids only (text in the message, a UUID from here on),
idempotent (the services make them so)."""

from __future__ import annotations

import uuid
from typing import TypedDict

import dramatiq
from django.conf import settings

from bulkimport import services
from bulkimport.services import dispatch

QUEUE = "bulk"
CHUNKS_QUEUE = "bulk-chunks"


class _Retry(TypedDict):
    max_retries: int
    min_backoff: int
    max_backoff: int


# Retried with backoff from 1 s to 1 min: every step is idempotent.
RETRY: _Retry = {"max_retries": 8, "min_backoff": 1_000, "max_backoff": 60_000}


@dramatiq.actor(actor_name=dispatch.PARSE.name, queue_name=QUEUE, time_limit=30 * 60 * 1000, **RETRY)
def bulk_parse(request_id: str) -> None:
    services.bulk_request_parse(request_id=uuid.UUID(request_id))


@dramatiq.actor(actor_name=dispatch.PARSE_SEGMENTS.name, queue_name=QUEUE, time_limit=30 * 60 * 1000, **RETRY)
def bulk_parse_segments(request_id: str, token: int) -> None:
    services.bulk_segments_parse(request_id=uuid.UUID(request_id), token=token)


# Chunks have a queue of their own: a request's parse and finish (priority 0) never wait in line behind
# another request's chunk messages. Each chunk message applies the fairest pending chunk (services.
# bulk_chunk_apply, fair=True), so requests advance round-robin rather than first come, first served.
@dramatiq.actor(
    actor_name=dispatch.APPLY_CHUNK.name, queue_name=CHUNKS_QUEUE, priority=1, time_limit=10 * 60 * 1000, **RETRY
)
def bulk_apply_chunk(chunk_id: int) -> None:
    services.bulk_chunk_apply(chunk_id=chunk_id, fair=settings.FAIR_SCHEDULING)


@dramatiq.actor(actor_name=dispatch.FINISH.name, queue_name=QUEUE, time_limit=15 * 60 * 1000, **RETRY)
def bulk_finish(request_id: str) -> None:
    services.bulk_request_finish(request_id=uuid.UUID(request_id))


@dramatiq.actor(actor_name=dispatch.REPROCESS.name, queue_name=QUEUE, time_limit=60 * 60 * 1000, max_retries=0)
def bulk_reprocess(request_id: str, failed_only: bool, requested_by: int | None = None) -> None:
    """Reprocessing of a large request, queued by the admin instead of running in a web request. Not
    retried on its own: an operator re-runs it (it is idempotent) after looking at why it failed. A refusal
    (over the Document Query budget, the request changed meanwhile) is logged and goes to the request's admin
    history for `requested_by`, the staff user who queued it."""
    services.bulk_request_reprocess_queued(
        request_id=uuid.UUID(request_id), failed_only=failed_only, requested_by=requested_by
    )
