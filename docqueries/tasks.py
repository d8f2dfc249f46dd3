"""Dramatiq actor of Document Queries: thin, ids only, idempotent (the claim in the service makes it so)."""

from __future__ import annotations

import dramatiq

from docqueries import services

QUEUE = "docqueries"


# A batch of up to 50 gateway calls of up to DOCQUERY_GATEWAY_TIMEOUT_SECONDS each fits in the time limit.
# Priority 10 (lower runs first): a worker holding both prefers the bulk pipeline's messages (priority 0),
# which a customer is waiting on, over queries started by it.
@dramatiq.actor(
    queue_name=QUEUE, priority=10, max_retries=3, min_backoff=2_000, max_backoff=60_000, time_limit=30 * 60 * 1000
)
def document_queries_run(query_ids: list[str]) -> None:
    services.document_queries_run(query_ids=query_ids)
