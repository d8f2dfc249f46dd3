"""document_queries_start: idempotent per (patient, bulk request), efficient for 2,000 patients, tenant-safe,
dispatched in batches on commit."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.db import IntegrityError, connection, transaction

from docqueries import tasks
from docqueries.models import DocumentQuery, QueryStatus
from docqueries.services import DISPATCH_BATCH_SIZE, SET_BATCH_SIZE, document_queries_start
from tests.helpers.docqueries import make_patients


@pytest.fixture
def sent(monkeypatch) -> list[list[str]]:
    """Records the actor messages instead of queueing them (no worker in these tests)."""
    messages: list[list[str]] = []
    monkeypatch.setattr(tasks.document_queries_run, "send", lambda ids: messages.append(ids))
    # The sandbox's first step is due after its delay: those messages go out delayed.
    monkeypatch.setattr(
        tasks.document_queries_run, "send_with_options", lambda *, args, **options: messages.append(args[0])
    )
    return messages


def test_creates_one_processing_query_per_patient_and_dispatches_on_commit(
    tenant, sent, django_capture_on_commit_callbacks
):
    patients = make_patients(tenant.customer, 3)
    bulk_id = uuid.uuid4()
    with django_capture_on_commit_callbacks(execute=True):
        created = document_queries_start(
            customer_id=tenant.customer.id, patient_ids=[p.id for p in patients], bulk_request_id=bulk_id
        )
        assert sent == []  # nothing before commit
    assert created == 3
    queries = DocumentQuery.objects.filter(bulk_request_id=bulk_id)
    assert {q.patient_id for q in queries} == {p.id for p in patients}
    assert all(q.status == QueryStatus.PROCESSING and q.next_attempt_at and q.attempts == 0 for q in queries)
    assert sorted(sum(sent, [])) == sorted(str(q.id) for q in queries)


def test_re_running_never_duplicates(tenant, sent, django_capture_on_commit_callbacks):
    patients = make_patients(tenant.customer, 4)
    bulk_id = uuid.uuid4()
    ids = [p.id for p in patients]
    assert document_queries_start(customer_id=tenant.customer.id, patient_ids=ids[:2], bulk_request_id=bulk_id) == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            document_queries_start(customer_id=tenant.customer.id, patient_ids=ids + ids, bulk_request_id=bulk_id) == 2
        )
    assert document_queries_start(customer_id=tenant.customer.id, patient_ids=ids, bulk_request_id=bulk_id) == 0
    assert DocumentQuery.objects.count() == 4
    assert len(sum(sent, [])) == 2  # only the new ones are dispatched
    # Another bulk request of the same patients gets its own queries.
    assert document_queries_start(customer_id=tenant.customer.id, patient_ids=ids, bulk_request_id=uuid.uuid4()) == 4


def test_the_unique_constraint_holds_in_the_database(tenant):
    (patient,) = make_patients(tenant.customer, 1)
    bulk_id = uuid.uuid4()
    DocumentQuery.objects.create(customer=tenant.customer, patient=patient, bulk_request_id=bulk_id)
    with pytest.raises(IntegrityError), transaction.atomic():
        DocumentQuery.objects.create(customer=tenant.customer, patient=patient, bulk_request_id=bulk_id)
    # Queries outside a bulk request (null bulk_request_id) never collide.
    DocumentQuery.objects.create(customer=tenant.customer, patient=patient)
    DocumentQuery.objects.create(customer=tenant.customer, patient=patient)


def test_without_a_bulk_request_a_processing_query_is_not_started_twice(tenant, sent):
    (patient,) = make_patients(tenant.customer, 1)
    assert document_queries_start(customer_id=tenant.customer.id, patient_ids=[patient.id]) == 1
    assert document_queries_start(customer_id=tenant.customer.id, patient_ids=[patient.id]) == 0
    DocumentQuery.objects.update(status=QueryStatus.COMPLETED)
    assert document_queries_start(customer_id=tenant.customer.id, patient_ids=[patient.id]) == 1


def test_another_customers_patients_are_ignored(tenant, other_tenant, sent):
    (mine,) = make_patients(tenant.customer, 1)
    (theirs,) = make_patients(other_tenant.customer, 1, prefix="other")
    created = document_queries_start(
        customer_id=tenant.customer.id, patient_ids=[mine.id, theirs.id, uuid.uuid4()], bulk_request_id=uuid.uuid4()
    )
    assert created == 1
    assert not DocumentQuery.objects.filter(patient=theirs).exists()


def test_two_thousand_patients_take_a_handful_of_queries_and_batched_messages(
    tenant, sent, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    patients = make_patients(tenant.customer, 2_000)
    # PostgreSQL: one INSERT ... SELECT ... RETURNING. SQLite splits the INSERT and the IN lists by its
    # bound-parameter limit.
    budget = 1 if connection.vendor == "postgresql" else 40
    with django_capture_on_commit_callbacks(execute=True), django_assert_max_num_queries(budget):
        created = document_queries_start(
            customer_id=tenant.customer.id, patient_ids=[p.id for p in patients], bulk_request_id=uuid.uuid4()
        )
    assert created == 2_000
    # The sandbox answers a batch set-based: large batches, few messages.
    assert len(sent) == 2_000 // SET_BATCH_SIZE
    assert all(len(batch) <= SET_BATCH_SIZE for batch in sent)
    assert len(set(sum(sent, []))) == 2_000


def test_a_per_query_backend_gets_small_batches(tenant, sent, settings, django_capture_on_commit_callbacks):
    settings.DOCQUERY_BACKEND = "http"
    settings.DOCQUERY_GATEWAY_URL = "http://127.0.0.1:9/gateway"
    patients = make_patients(tenant.customer, 120)
    with django_capture_on_commit_callbacks(execute=True):
        document_queries_start(
            customer_id=tenant.customer.id, patient_ids=[p.id for p in patients], bulk_request_id=uuid.uuid4()
        )
    assert [len(batch) for batch in sent] == [DISPATCH_BATCH_SIZE, DISPATCH_BATCH_SIZE, 120 - 2 * DISPATCH_BATCH_SIZE]


def test_an_empty_list_does_nothing(tenant, sent):
    assert document_queries_start(customer_id=tenant.customer.id, patient_ids=[]) == 0


def test_the_sandboxs_first_step_is_due_when_it_can_answer(tenant, settings, django_capture_on_commit_callbacks):
    """The sandbox network answers DOCQUERY_SANDBOX_DELAY_SECONDS after a query starts: the first step is due
    then, so each query is answered by one run instead of a run, a poll and a second run."""
    from django.utils import timezone

    from docqueries.services import document_queries_run
    from tests.helpers.waiting import wait_until

    settings.DOCQUERY_SANDBOX_DELAY_SECONDS = 0.5
    patients = make_patients(tenant.customer, 2)
    before = timezone.now()
    document_queries_start(customer_id=tenant.customer.id, patient_ids=[p.id for p in patients])
    queries = DocumentQuery.objects.filter(patient__in=patients)
    assert all(q.next_attempt_at >= before + datetime.timedelta(seconds=0.5) for q in queries)
    ids = [str(q.id) for q in queries]
    first = max(q.next_attempt_at for q in queries)
    wait_until(lambda: timezone.now() >= first, timeout=10, message="the first step is due")
    document_queries_run(query_ids=ids)
    assert {(q.status, q.attempts) for q in queries.all()} == {(QueryStatus.COMPLETED, 1)}


@pytest.mark.real_services
def test_query_ids_are_time_ordered_uuids_on_postgresql(tenant, sent, django_capture_on_commit_callbacks):
    """Version 7 ids (48 bits of milliseconds first): a chunk's queries go to the right edge of the primary-key
    index, not all over it. A later start's ids sort after an earlier one's."""
    first, second = make_patients(tenant.customer, 2, prefix="a"), make_patients(tenant.customer, 2, prefix="b")
    with django_capture_on_commit_callbacks(execute=True):
        document_queries_start(
            customer_id=tenant.customer.id, patient_ids=[p.id for p in first], bulk_request_id=uuid.uuid4()
        )
    with django_capture_on_commit_callbacks(execute=True):
        document_queries_start(
            customer_id=tenant.customer.id, patient_ids=[p.id for p in second], bulk_request_id=uuid.uuid4()
        )
    earlier = list(DocumentQuery.objects.filter(patient__in=first).values_list("id", "started_at"))
    later = list(DocumentQuery.objects.filter(patient__in=second).values_list("id", "started_at"))
    for query_id, started_at in earlier + later:
        assert query_id.version == 7 and query_id.variant == uuid.RFC_4122
        milliseconds = int.from_bytes(query_id.bytes[:6], "big")
        assert abs(milliseconds / 1000 - started_at.timestamp()) < 5  # the time it was created
    assert max(query_id for query_id, _ in earlier) < min(query_id for query_id, _ in later) or (
        # the same millisecond: then only the random bits order them
        int.from_bytes(max(q for q, _ in earlier).bytes[:6], "big")
        == int.from_bytes(min(q for q, _ in later).bytes[:6], "big")
    )


@pytest.mark.parametrize(
    ("express", "fair", "marked"),
    [(True, True, True), (False, True, False), (True, False, False)],
    ids=["express lane", "ordinary lane", "no fair scheduling: one lane"],
)
def test_a_query_sent_to_the_express_lane_is_marked_so(tenant, settings, express, fair, marked):
    """A worker on a parse segment stops for an express query not taken (bulkimport.services.parse), so the
    query says whether its messages went to that lane; without fair scheduling every query goes to the
    ordinary one."""
    settings.FAIR_SCHEDULING = fair
    patients = make_patients(tenant.customer, 2)
    assert (
        document_queries_start(
            customer_id=tenant.customer.id,
            patient_ids=[p.id for p in patients],
            bulk_request_id=uuid.uuid4(),
            express=express,
        )
        == 2
    )
    assert [q.express for q in DocumentQuery.objects.all()] == [marked, marked]
