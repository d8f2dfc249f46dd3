"""Dramatiq actor of Document Queries: thin, ids only, idempotent (the claim in the service makes it so)."""

from __future__ import annotations

from typing import TypedDict

import dramatiq

from docqueries import services
from docqueries.services import dispatch

QUEUE = dispatch.LANE
EXPRESS_QUEUE = dispatch.EXPRESS_LANE


class _Options(TypedDict):
    max_retries: int
    min_backoff: int
    max_backoff: int
    time_limit: int


# A batch of up to 50 gateway calls of up to DOCQUERY_GATEWAY_TIMEOUT_SECONDS each fits in the time limit.
OPTIONS: _Options = {"max_retries": 3, "min_backoff": 2_000, "max_backoff": 60_000, "time_limit": 30 * 60 * 1000}


# Priority 2, after bulk chunks (1): a worker holding both applies the chunks first, so an import's patients
# are all written before its later queries take the workers' cores (they had taken turns: the same total
# work, the patients written ~2.3 s later at 100,000 rows, bench/pipeline.py). The first chunk's queries go
# to the express lane (0) and start at once; the rest run as soon as no chunk waits.
@dramatiq.actor(actor_name=dispatch.RUN.name, queue_name=QUEUE, priority=2, **OPTIONS)
def document_queries_run(query_ids: list[str], queued_at: float | None = None) -> None:
    services.document_queries_run(query_ids=query_ids, lane=QUEUE, queued_at=queued_at)


# The queries of every bulk request's first chunk (and of single patients): a lane of their own at the
# priority of parse and finish, so a small request's medical data never waits behind a big request's queue
# of queries; a big request's later chunks use the ordinary queue, in the chunks' round-robin order. A
# dispatch holds at most dispatch.EXPRESS_CHAINS messages at a time here (`then`: the rest of its chain, sent
# on when this batch has run), so requests take turns a few batches each and a big first chunk never queues
# ahead of another customer's first query.
@dramatiq.actor(actor_name=dispatch.RUN_EXPRESS.name, queue_name=EXPRESS_QUEUE, priority=0, **OPTIONS)
def document_queries_run_express(
    query_ids: list[str], then: list[str] | None = None, queued_at: float | None = None
) -> None:
    services.document_queries_run(query_ids=query_ids, lane=EXPRESS_QUEUE, queued_at=queued_at)
    if then:
        dispatch.express_continue(then)
