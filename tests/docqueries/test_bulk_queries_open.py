"""Whether a bulk request still has Document Queries processing: asked each time a batch of its queries ends
(with the query that ended last) and by the sweeper (without). The queries started after the one that ended,
or the last ones started, are looked at first; the answer is the same whether that finds one or not (issue
24: the probe's cost no longer grows with the queries of the request that have ended). Both stores."""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from docqueries.models import DocumentQuery, QueryStatus
from docqueries.services import bulk_queries_open
from docqueries.services.finish import _announce_ended
from docqueries.signals import document_queries_ended
from docqueries.store import store
from docqueries.store.claimed import ClaimedPatient, ClaimedQuery
from tests.helpers.docqueries import make_patients
from tests.helpers.plans import explained

pytestmark = pytest.mark.django_db


def _queries(tenant, request_id: uuid.UUID, count: int, *, first: int = 1) -> list[DocumentQuery]:
    """`count` processing queries of the request, their ids ascending in start order (as version 7 ids are),
    above any id a version 7 query of another test may have left in the table."""
    patients = make_patients(tenant.customer, count, prefix=f"p{first}-")
    return DocumentQuery.objects.bulk_create(
        DocumentQuery(
            id=uuid.UUID(int=(0xFFFF << 112) | ((first + i) << 64)),
            customer=tenant.customer,
            patient=patient,
            bulk_request_id=request_id,
            status=QueryStatus.PROCESSING,
            next_attempt_at=timezone.now(),
        )
        for i, patient in enumerate(patients)
    )


def _end(queries: list[DocumentQuery]) -> None:
    DocumentQuery.objects.filter(id__in=[q.id for q in queries]).update(
        status=QueryStatus.COMPLETED, finished_at=timezone.now(), next_attempt_at=None
    )


def test_a_query_started_after_the_one_that_ended_keeps_the_request_open(tenant):
    request_id = uuid.uuid4()
    queries = _queries(tenant, request_id, 6)
    _end(queries[:3])
    assert bulk_queries_open(bulk_request_id=request_id, after=queries[2].id)


def test_a_query_started_before_the_one_that_ended_keeps_the_request_open(tenant):
    """Another worker's batch, started earlier, still running: nothing after the query that ended is
    processing, and every query of the request is looked at."""
    request_id = uuid.uuid4()
    queries = _queries(tenant, request_id, 6)
    _end(queries[2:])
    assert bulk_queries_open(bulk_request_id=request_id, after=queries[-1].id)
    assert bulk_queries_open(bulk_request_id=request_id)


def test_another_requests_later_queries_do_not_keep_the_request_open(tenant):
    request_id, other_id = uuid.uuid4(), uuid.uuid4()
    queries = _queries(tenant, request_id, 4)
    _queries(tenant, other_id, 4, first=10)  # started after the request's, still processing
    _end(queries)
    assert not bulk_queries_open(bulk_request_id=request_id, after=queries[1].id)
    assert not bulk_queries_open(bulk_request_id=request_id)
    assert bulk_queries_open(bulk_request_id=other_id, after=queries[-1].id)


def test_a_failed_query_has_ended_too(tenant):
    request_id = uuid.uuid4()
    queries = _queries(tenant, request_id, 3)
    _end(queries[:2])
    DocumentQuery.objects.filter(id=queries[2].id).update(status=QueryStatus.FAILED, next_attempt_at=None)
    assert not bulk_queries_open(bulk_request_id=request_id, after=queries[0].id)


def test_without_a_query_that_ended_the_request_is_open_while_any_query_of_it_is(tenant):
    """The sweeper's question: no query named. The last ones started are looked at first (PostgreSQL), then
    all of them."""
    request_id = uuid.uuid4()
    queries = _queries(tenant, request_id, 4)
    _queries(tenant, uuid.uuid4(), 2, first=10)  # another request's, started later, processing
    _end(queries[2:])
    assert bulk_queries_open(bulk_request_id=request_id)
    _end(queries[:2])
    assert not bulk_queries_open(bulk_request_id=request_id)


@pytest.mark.real_services
def test_postgres_looks_first_at_the_queries_started_after_the_one_that_ended_or_last(tenant):
    """The nearby probe's own answers (the whole-request probe decides when it finds nothing)."""
    request_id, other_id = uuid.uuid4(), uuid.uuid4()
    queries = _queries(tenant, request_id, 6)
    _end(queries[:3])
    assert store().processing_nearby(request_id, queries[2].id)  # the next one started
    assert store().processing_nearby(request_id, None)  # the last ones started (the sweeper's)
    _end(queries[3:5])
    assert store().processing_nearby(request_id, queries[4].id)
    assert not store().processing_nearby(request_id, queries[5].id)  # none started after the last one
    _queries(tenant, other_id, 2, first=10)  # another request's, started later and processing
    assert not store().processing_nearby(request_id, queries[5].id)
    assert store().processing_nearby(request_id, None)  # within the window of the last ones started
    _end(queries[5:])
    assert not store().processing_nearby(request_id, None)


@pytest.mark.real_services
def test_beyond_the_window_every_query_of_the_request_is_looked_at(tenant, monkeypatch):
    """PostgreSQL looks at a bounded run of later queries (another request's chunk may come between): past
    it, the request is still found open, by the probe of all its queries."""
    import docqueries.store.postgres as docquery_sql

    monkeypatch.setattr(docquery_sql, "NEARBY_PAGE", 1)
    monkeypatch.setattr(docquery_sql, "NEARBY_PAGES", 3)
    request_id = uuid.uuid4()
    queries = _queries(tenant, request_id, 2)
    _queries(tenant, uuid.uuid4(), 3, first=10)  # a window's worth of another request's queries in between
    later = _queries(tenant, request_id, 1, first=20)
    _end(queries)
    assert not store().processing_nearby(request_id, queries[-1].id)
    assert bulk_queries_open(bulk_request_id=request_id, after=queries[-1].id)
    _queries(tenant, uuid.uuid4(), 3, first=30)  # started last: the request's own are out of the window
    assert not store().processing_nearby(request_id, None)
    assert bulk_queries_open(bulk_request_id=request_id)
    _end(later)
    assert not bulk_queries_open(bulk_request_id=request_id, after=queries[-1].id)


@pytest.mark.real_services
def test_the_probe_after_an_ended_query_reads_the_queries_started_after_it_not_the_ended_ones(tenant, monkeypatch):
    """The (bulk request, status) index keeps an entry of every ended query until a vacuum, and a probe
    through it walks them all before it reaches one still processing. The probe after the query that ended
    reaches the queries started after it by the primary key, a page at a time, and the sweeper's the queries
    started last: each reads one page of the 3,000 queries, not the 2,990 that ended. EXPLAIN ANALYZE of the
    store's own statement on an analyzed table (run with `-s` to read the plans)."""
    import docqueries.store.postgres as docquery_sql

    request_id = uuid.uuid4()
    queries = _queries(tenant, request_id, 3_000)
    _end(queries[:2_990])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE docqueries_documentquery")
    with explained(monkeypatch, docquery_sql, analyze=True) as plans:
        docquery_sql.processing_nearby(request_id, queries[2_989].id)
        docquery_sql.processing_nearby(request_id, None)  # the sweeper's: the last queries started
    after, latest = plans
    print(after, latest, sep="\n")
    assert "Index Scan using docqueries_documentquery_pkey" in after and "Index Cond: (id > " in after, after
    assert "Index Scan Backward using docqueries_documentquery_pkey" in latest, latest
    for plan in (after, latest):
        read = [int(n) for n in re.findall(r"actual rows=(\d+)", plan)]
        assert max(read) <= docquery_sql.NEARBY_PAGE, plan  # one page: the ten still processing are in it


def test_the_end_of_a_batch_names_each_requests_query_that_ended_last(tenant, django_capture_on_commit_callbacks):
    requests = uuid.uuid4(), uuid.uuid4()
    patient = ClaimedPatient(uuid.uuid4(), "", "", "", None, "", [])
    ids = [uuid.UUID(int=n << 64) for n in (3, 9, 5, 7)]  # 9 > 3: request 0's latest
    ended = [
        ClaimedQuery(ids[0], tenant.customer.id, patient.id, requests[0], timezone.now(), 0, patient),
        ClaimedQuery(ids[1], tenant.customer.id, patient.id, requests[0], timezone.now(), 0, patient),
        ClaimedQuery(ids[2], tenant.customer.id, patient.id, requests[1], timezone.now(), 0, patient),
        ClaimedQuery(ids[3], tenant.customer.id, patient.id, None, timezone.now(), 0, patient),
    ]
    heard: list[dict] = []

    def listen(sender, **kwargs):
        heard.append(kwargs)

    document_queries_ended.connect(listen)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            _announce_ended(ended)
    finally:
        document_queries_ended.disconnect(listen)
    assert [(h["bulk_request_ids"], h["latest"]) for h in heard] == [
        ({requests[0], requests[1]}, {requests[0]: ids[1], requests[1]: ids[2]})
    ]
