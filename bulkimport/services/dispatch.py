"""The pipeline's actor messages, sent by reference (`metriport_bulk.lib.messages`) to the actors that
bulkimport.tasks declares under these names: no service imports the actors module. `*_on_commit` sends
when the caller's transaction commits (a rolled-back step sends nothing; the sweeper repairs a send lost to a
crash after the commit); `*_now` is for callers outside a transaction of their own (the sweeper, the end of a
Document Query)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db import transaction

from metriport_bulk.lib.messages import ActorRef

PARSE = ActorRef("bulk_parse")
APPLY_CHUNK = ActorRef("bulk_apply_chunk")
FINISH = ActorRef("bulk_finish")
REPROCESS = ActorRef("bulk_reprocess")


def parse_on_commit(request_id: uuid.UUID) -> None:
    transaction.on_commit(lambda: parse_now(request_id))


def parse_now(request_id: uuid.UUID) -> None:
    PARSE.send(str(request_id))


def finish_on_commit(request_id: uuid.UUID) -> None:
    transaction.on_commit(lambda: finish_now(request_id))


def finish_now(request_id: uuid.UUID) -> None:
    FINISH.send(str(request_id))


def chunks_on_commit(chunk_ids: list[int]) -> None:
    transaction.on_commit(lambda: chunks_now(chunk_ids))


def chunks_now(chunk_ids: Iterable[int]) -> None:
    actor = APPLY_CHUNK.actor()
    for chunk_id in chunk_ids:
        actor.send(chunk_id)


def reprocess_on_commit(request_id: uuid.UUID, *, failed_only: bool) -> None:
    transaction.on_commit(lambda: REPROCESS.send(str(request_id), failed_only))
