"""The pipeline's actor messages, sent by reference to the actors of bulkimport.tasks (never looked up by
name). `*_on_commit` sends when the caller's transaction commits (a rolled-back step sends nothing; the
sweeper repairs a send lost to a crash after the commit); `*_now` is for callers outside a transaction of
their own (the sweeper, the end of a Document Query)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from types import ModuleType

from django.db import transaction


def _tasks() -> ModuleType:
    # Imported when first sent: the actors module imports the services that call this one.
    from bulkimport import tasks

    return tasks


def parse_on_commit(request_id: uuid.UUID) -> None:
    transaction.on_commit(lambda: parse_now(request_id))


def parse_now(request_id: uuid.UUID) -> None:
    _tasks().bulk_parse.send(str(request_id))


def finish_on_commit(request_id: uuid.UUID) -> None:
    transaction.on_commit(lambda: finish_now(request_id))


def finish_now(request_id: uuid.UUID) -> None:
    _tasks().bulk_finish.send(str(request_id))


def chunks_on_commit(chunk_ids: list[int]) -> None:
    transaction.on_commit(lambda: chunks_now(chunk_ids))


def chunks_now(chunk_ids: Iterable[int]) -> None:
    actor = _tasks().bulk_apply_chunk
    for chunk_id in chunk_ids:
        actor.send(chunk_id)


def reprocess_on_commit(request_id: uuid.UUID, *, failed_only: bool) -> None:
    transaction.on_commit(lambda: _tasks().bulk_reprocess.send(str(request_id), failed_only))
