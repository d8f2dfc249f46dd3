"""The actor messages of Document Queries, sent on commit in batches (delayed for retries and polls), by
reference (`metriport_bulk.lib.messages`) to the actors docqueries.tasks declares under these names."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence

from django.conf import settings

from docqueries.backends import get_backend
from metriport_bulk.lib.messages import ActorRef
from metriport_bulk.lib.sending import send_on_commit

DISPATCH_BATCH_SIZE = 50
SET_BATCH_SIZE = 1_000

QueryId = uuid.UUID | str

RUN = ActorRef("document_queries_run")
RUN_EXPRESS = ActorRef("document_queries_run_express")


def batches(ids: Sequence[QueryId], size: int | None = None) -> list[list[str]]:
    """Batches of one actor message: large for a set-based backend (a batch costs a few statements), small
    for one that calls a gateway per query (a batch is that many calls in a row)."""
    size = size or (SET_BATCH_SIZE if get_backend().set_based else DISPATCH_BATCH_SIZE)
    texts = [str(query_id) for query_id in ids]
    return [texts[index : index + size] for index in range(0, len(texts), size)]


def dispatch_on_commit(query_ids: Sequence[QueryId], *, delay_seconds: float = 0.0, express: bool = False) -> None:
    """Sends the actor messages of `query_ids` once the caller commits (delayed by `delay_seconds`), to the
    express queue when `express` and fair scheduling is on."""
    ref = RUN_EXPRESS if express and settings.FAIR_SCHEDULING else RUN
    query_batches = batches(query_ids)
    if not query_batches:
        return
    delay_ms = int(math.ceil(delay_seconds * 1000)) if delay_seconds > 0 else None

    def send() -> None:
        actor = ref.actor()
        for batch in query_batches:
            if delay_ms:
                actor.send_with_options(args=(batch,), delay=delay_ms)
            else:
                actor.send(batch)

    send_on_commit(send, what=f"{len(query_ids)} Document Query run(s)")  # a lost send: the sweep re-sends
