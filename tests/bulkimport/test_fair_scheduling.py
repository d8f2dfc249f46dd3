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


def test_an_express_dispatch_holds_a_few_messages_at_a_time_and_each_sends_its_next_batch_on(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    """A big first chunk on the express lane (40 gateway batches with the http backend) holds EXPRESS_CHAINS
    messages there at once, each carrying the rest of its chain, so it cannot queue ahead of every other
    customer's first query (tests/docqueries/test_fairness.py shows it on the real broker). The ordinary
    lane, and the express one with fair scheduling off, get every batch at once."""
    from docqueries import tasks
    from docqueries.services import dispatch

    settings.DOCQUERY_BACKEND = "http"
    sent: list[tuple[str, list[str], list[str]]] = []
    for actor in (tasks.document_queries_run, tasks.document_queries_run_express):
        monkeypatch.setattr(actor, "send", lambda ids, name=actor.queue_name: sent.append((name, ids, [])))
        monkeypatch.setattr(
            actor,
            "send_with_options",
            lambda *, args, kwargs=None, name=actor.queue_name, **options: sent.append(
                (name, args[0], (kwargs or {}).get("then", []))
            ),
        )
    ids = [f"q{index}" for index in range(9 * dispatch.DISPATCH_BATCH_SIZE + 3)]  # 10 batches

    def dispatched(**options) -> None:
        sent.clear()
        with django_capture_on_commit_callbacks(execute=True):
            dispatch.dispatch_on_commit(ids, **options)

    dispatched(express=True)
    assert [(lane, len(batch), len(then)) for lane, batch, then in sent] == [
        ("docqueries-express", 50, 100),  # batches 0, 4, 8
        ("docqueries-express", 50, 53),  # batches 1, 5, 9 (3 queries)
        ("docqueries-express", 50, 50),  # batches 2, 6
        ("docqueries-express", 50, 50),  # batches 3, 7
    ]
    first, then = sent[0][1], sent[0][2]
    assert first == ids[:50] and then == ids[200:250] + ids[400:450]
    # The message has run its batch: the next of its chain goes to the back of the express lane.
    sent.clear()
    monkeypatch.setattr("docqueries.services.document_queries_run", lambda query_ids, **lane: None)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.document_queries_run_express(first, then=then)
    assert sent == [("docqueries-express", ids[200:250], ids[400:450])]
    sent.clear()
    tasks.document_queries_run_express(ids[400:450])  # a chain's last message sends nothing on
    assert sent == []
    # Every query of the dispatch is in exactly one chain.
    dispatched(express=True)
    chained = [query_id for _, batch, then in sent for query_id in batch + then]
    assert sorted(chained) == sorted(ids)
    settings.FAIR_SCHEDULING = False
    dispatched(express=True)
    assert [(lane, len(batch)) for lane, batch, _ in sent] == [("docqueries", 50)] * 9 + [("docqueries", 3)]
