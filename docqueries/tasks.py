"""Dramatiq actor of Document Queries: thin, ids only, idempotent (the claim in the service makes it so)."""

from __future__ import annotations

import dramatiq

from docqueries import services

QUEUE = "docqueries"


# A batch of up to 50 gateway calls of up to DOCQUERY_GATEWAY_TIMEOUT_SECONDS each fits in the time limit.
# Priority 1, as bulk chunks: a worker holding both takes them in turn (a bulk request completes only when
# its queries have ended, so they are not background work).
@dramatiq.actor(
    queue_name=QUEUE, priority=1, max_retries=3, min_backoff=2_000, max_backoff=60_000, time_limit=30 * 60 * 1000
)
def document_queries_run(query_ids: list[str]) -> None:
    services.document_queries_run(query_ids=query_ids)
