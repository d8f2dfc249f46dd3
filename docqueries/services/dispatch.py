"""The actor messages of Document Queries, sent on commit in batches (delayed for retries and polls), by
reference (`metriport_bulk.lib.messages`) to the actors docqueries.tasks declares under these names."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence

from django.conf import settings

from docqueries.backends import get_backend
from metriport_bulk.lib.messages import ActorRef
from metriport_bulk.lib.sending import send_on_commit

DISPATCH_BATCH_SIZE = 50
SET_BATCH_SIZE = 1_000
# Messages a dispatch holds on the express queue at once: a lone request's first chunk still keeps a
# worker's threads busy (2 processes x 2 threads, the README's sizing), and another customer's first query
# waits behind at most this many queued batches of each request that began just before it.
EXPRESS_CHAINS = 4

QueryId = uuid.UUID | str

# The two queues (lanes) of query messages: later chunks' queries, and the express lane of every request's
# first chunk and of single patients (docqueries.tasks declares its actors on them).
LANE = "docqueries"
EXPRESS_LANE = "docqueries-express"

RUN = ActorRef("document_queries_run")
RUN_EXPRESS = ActorRef("document_queries_run_express")


def batches(ids: Sequence[QueryId], size: int | None = None) -> list[list[str]]:
    """Batches of one actor message: large for a set-based backend (a batch costs a few statements), small
    for one that calls a gateway per query (a batch is that many calls in a row)."""
    size = size or (SET_BATCH_SIZE if get_backend().set_based else DISPATCH_BATCH_SIZE)
    texts = [str(query_id) for query_id in ids]
    return [texts[index : index + size] for index in range(0, len(texts), size)]


def _joined(query_batches: list[list[str]]) -> list[str]:
    return [query_id for batch in query_batches for query_id in batch]


def dispatch_on_commit(query_ids: Sequence[QueryId], *, delay_seconds: float = 0.0, express: bool = False) -> None:
    """Sends the actor messages of `query_ids` once the caller commits (delayed by `delay_seconds`), to the
    express queue when `express` and fair scheduling is on.

    On the express queue a dispatch holds at most EXPRESS_CHAINS messages at a time: its first batches, each
    carrying its share of the others (`then`), which it sends on (`express_continue`) once its batch has run,
    to the back of the queue. Every request's first chunk and every single patient so take turns on the
    express queue, a few batches each, instead of a big request's first chunk (BULK_CHUNK_SIZE queries: 40
    batches of the http backend) queueing ahead of every other customer's first query. The ordinary queue
    gets all batches at once."""
    query_batches = batches(query_ids)
    if not query_batches:
        return
    delay_ms = int(math.ceil(delay_seconds * 1000)) if delay_seconds > 0 else None
    if express and settings.FAIR_SCHEDULING:
        # Chain i: batches i, i + EXPRESS_CHAINS, i + 2 * EXPRESS_CHAINS...
        chains = [
            (first, _joined(query_batches[index + EXPRESS_CHAINS :: EXPRESS_CHAINS]))
            for index, first in enumerate(query_batches[:EXPRESS_CHAINS])
        ]

        def send_express() -> None:
            actor = RUN_EXPRESS.actor()
            queued_at = _queued_at(delay_ms)
            for first, then in chains:
                actor.send_with_options(args=(first,), kwargs=_express_kwargs(then, queued_at), delay=delay_ms)

        send_on_commit(send_express, what=f"{len(query_ids)} Document Query run(s), express")
        return

    def send() -> None:
        actor = RUN.actor()
        queued_at = _queued_at(delay_ms)
        for batch in query_batches:
            actor.send_with_options(args=(batch,), kwargs={"queued_at": queued_at}, delay=delay_ms)

    send_on_commit(send, what=f"{len(query_ids)} Document Query run(s)")  # a lost send: the sweep re-sends


def _queued_at(delay_ms: int | None) -> float:
    """When a message sent now enters its queue (epoch seconds): workers record it as they begin it
    (services.lanes), so the sweeper can tell a queued query from a lost one."""
    return time.time() + (delay_ms or 0) / 1000


def _express_kwargs(then: list[str], queued_at: float) -> dict[str, object]:
    return {"then": then, "queued_at": queued_at} if then else {"queued_at": queued_at}


def express_continue(then: Sequence[QueryId]) -> None:
    """An express message's batch has run: the next batch of its chain goes to the back of the express
    queue, behind the other requests' and patients' batches (a lost send: the sweep re-sends them)."""
    query_batches = batches(then)
    rest = _joined(query_batches[1:])

    def send() -> None:
        RUN_EXPRESS.actor().send_with_options(args=(query_batches[0],), kwargs=_express_kwargs(rest, _queued_at(None)))

    send_on_commit(send, what=f"{len(then)} Document Query run(s), express")
