"""Fair scheduling across customers (SPEC §5, issue 13): a chunk message or a Document Query message is a
token that runs the pending work with the least progress of all requests, not its own, so a small request of
one customer never waits for another customer's big one (bench/fairness.py measures it end to end)."""

from __future__ import annotations

import pytest

from bulkimport import services
from bulkimport.models import BulkChunk, ChunkStatus
from tests.helpers.bulk import csv_bytes, person, submit
from tests.helpers.factories import make_tenant

pytestmark = pytest.mark.django_db


def parsed(tenant, rows: int):
    request = submit(tenant, csv_bytes([person(f"P{i}", zip_code=f"{10000 + i}") for i in range(rows)]))
    services.bulk_request_parse(request_id=request.id)
    return list(BulkChunk.objects.filter(request=request).order_by("index"))


def pending(chunks) -> list[int]:
    return list(
        BulkChunk.objects.filter(id__in=[c.id for c in chunks], status=ChunkStatus.PENDING)
        .order_by("index")
        .values_list("index", flat=True)
    )


def test_a_chunk_message_applies_the_chunk_with_the_least_progress(settings):
    settings.BULK_CHUNK_SIZE = 10
    big = parsed(make_tenant("A"), 60)
    for chunk in big[:2]:
        services.bulk_chunk_apply(chunk_id=chunk.id, fair=True)
    assert pending(big) == [2, 3, 4, 5]
    (small,) = parsed(make_tenant("B"), 5)
    # A message of A's last chunk: B's only chunk has less progress (index 0 < 2), so it goes first.
    services.bulk_chunk_apply(chunk_id=big[-1].id, fair=True)
    assert BulkChunk.objects.get(id=small.id).status == ChunkStatus.DONE
    assert pending(big) == [2, 3, 4, 5]
    # Then A's chunks in order, whatever message runs them; one message per chunk is enough for all.
    for chunk in big[2:]:
        services.bulk_chunk_apply(chunk_id=chunk.id, fair=True)
    assert pending(big) == []


def test_first_come_first_served_when_fair_scheduling_is_off(settings):
    settings.BULK_CHUNK_SIZE = 10
    big = parsed(make_tenant("A"), 30)
    (small,) = parsed(make_tenant("B"), 5)
    services.bulk_chunk_apply(chunk_id=big[2].id, fair=False)
    assert pending(big) == [0, 1] and BulkChunk.objects.get(id=small.id).status == ChunkStatus.PENDING


def test_a_requests_first_chunk_sends_its_queries_by_the_express_lane(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    """Every request's first chunk (and so all of a small request) has its Document Queries on the express
    queue: they never wait behind a big request's queue of queries. Later chunks use the ordinary one; with
    fair scheduling off, everything does."""
    from docqueries import tasks

    settings.BULK_CHUNK_SIZE = 10
    lanes: list[tuple[str, int]] = []
    for actor in (tasks.document_queries_run, tasks.document_queries_run_express):
        monkeypatch.setattr(actor, "send", lambda ids, name=actor.queue_name: lanes.append((name, len(ids))))
        monkeypatch.setattr(
            actor,
            "send_with_options",
            lambda *, args, name=actor.queue_name, **options: lanes.append((name, len(args[0]))),
        )
    chunks = parsed(make_tenant("A"), 20)
    for chunk in chunks:
        with django_capture_on_commit_callbacks(execute=True):
            services.bulk_chunk_apply(chunk_id=chunk.id, fair=True)
    assert lanes == [("docqueries-express", 10), ("docqueries", 10)]
    settings.FAIR_SCHEDULING = False
    lanes.clear()
    (small,) = parsed(make_tenant("B"), 5)
    with django_capture_on_commit_callbacks(execute=True):
        services.bulk_chunk_apply(chunk_id=small.id)
    assert lanes == [("docqueries", 5)]
