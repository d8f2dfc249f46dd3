"""The pipeline's actor messages, sent by reference (`metriport_bulk.lib.messages`) to the actors that
bulkimport.tasks declares under these names: no service imports the actors module. `*_on_commit` sends
when the caller's transaction commits (a rolled-back step sends nothing; the sweeper repairs a send lost to a
crash after the commit); `*_now` is for callers outside a transaction of their own (the sweeper, the end of a
Document Query). A send the broker refuses after the commit is logged, not raised (metriport_bulk.lib.sending):
the sweeper re-sends it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from metriport_bulk.lib.messages import ActorRef
from metriport_bulk.lib.sending import send_on_commit

PARSE = ActorRef("bulk_parse")
PARSE_SEGMENTS = ActorRef("bulk_parse_segments")
APPLY_CHUNK = ActorRef("bulk_apply_chunk")
FINISH = ActorRef("bulk_finish")
REPROCESS = ActorRef("bulk_reprocess")


def parse_on_commit(request_id: uuid.UUID) -> None:
    send_on_commit(lambda: parse_now(request_id), what=f"parse of {request_id}")


def parse_now(request_id: uuid.UUID) -> None:
    PARSE.send(str(request_id))


def segments_on_commit(request_id: uuid.UUID, token: int, *, count: int) -> None:
    send_on_commit(lambda: segments_now(request_id, token, count=count), what=f"parse segments of {request_id}")


def segments_now(request_id: uuid.UUID, token: int, *, count: int) -> None:
    actor = PARSE_SEGMENTS.actor()
    for _ in range(count):
        actor.send(str(request_id), token)


def finish_on_commit(request_id: uuid.UUID) -> None:
    send_on_commit(lambda: finish_now(request_id), what=f"finish of {request_id}")


def finish_now(request_id: uuid.UUID) -> None:
    FINISH.send(str(request_id))


def chunks_on_commit(chunk_ids: list[int]) -> None:
    send_on_commit(lambda: chunks_now(chunk_ids), what=f"{len(chunk_ids)} chunk(s)")


def chunks_now(chunk_ids: Iterable[int]) -> None:
    actor = APPLY_CHUNK.actor()
    for chunk_id in chunk_ids:
        actor.send(chunk_id)


def reprocess_on_commit(request_id: uuid.UUID, *, failed_only: bool, requested_by: int | None = None) -> None:
    send_on_commit(
        lambda: REPROCESS.send(str(request_id), failed_only, requested_by), what=f"reprocess of {request_id}"
    )
