"""The Document Query sweeper re-sends lost messages only (issue 24): a query queued behind a backlog that the
workers are still working through is left to its message; one the workers have passed, or one due while no
lane moves, is re-sent and runs. Lanes record how far the workers have got (docqueries.services.lanes)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from docqueries.models import DocumentQuery, LaneProgress, QueryStatus
from docqueries.services import document_queries_start, document_query_sweep
from docqueries.services import lanes as lanes_module
from docqueries.services.lanes import LaneMark, lane_held_back, lane_reached, lost_before
from docqueries.store import store
from docqueries.tasks import QUEUE
from tests.helpers.bulk import csv_bytes, person, submit
from tests.helpers.docqueries import make_patients
from tests.helpers.waiting import wait_until

GRACE = 30.0


@pytest.fixture(autouse=True)
def grace(settings):
    settings.DOCQUERY_SWEEP_GRACE_SECONDS = GRACE


def _due_query(tenant, *, due_ago: float, prefix: str = "q") -> DocumentQuery:
    (patient,) = make_patients(tenant.customer, 1, prefix=prefix)
    now = timezone.now()
    return DocumentQuery.objects.create(
        customer=tenant.customer,
        patient=patient,
        started_at=now - timedelta(seconds=due_ago + 5),
        next_attempt_at=now - timedelta(seconds=due_ago),
    )


def _lane(*, frontier_ago: float, progress_ago: float, lane: str = QUEUE) -> None:
    now = timezone.now()
    LaneProgress.objects.update_or_create(
        lane=lane,
        defaults={
            "frontier": now - timedelta(seconds=frontier_ago),
            "progress_at": now - timedelta(seconds=progress_ago),
        },
    )


@pytest.mark.usefixtures("worker")
def test_a_query_the_moving_lane_has_not_reached_is_left_to_its_message(tenant):
    # The workers are busy with messages queued 120 s ago; this query became due 60 s ago: still queued.
    _lane(frontier_ago=120, progress_ago=1)
    queued = _due_query(tenant, due_ago=60)
    before = queued.next_attempt_at
    document_query_sweep()
    queued.refresh_from_db()
    assert queued.status == QueryStatus.PROCESSING
    assert queued.next_attempt_at == before  # not made due again, not re-sent


@pytest.mark.usefixtures("worker")
def test_a_query_the_moving_lane_has_passed_is_resent_and_runs(tenant, hook, webhook_receiver):
    # The workers have reached messages queued 5 s ago; this query was due 60 s ago and was never claimed:
    # its message is lost.
    _lane(frontier_ago=5, progress_ago=1)
    lost = _due_query(tenant, due_ago=60)
    document_query_sweep()
    wait_until(
        lambda: DocumentQuery.objects.get(id=lost.id).status == QueryStatus.COMPLETED, message="re-sent query ran"
    )
    webhook_receiver.wait_for_count(1)


@pytest.mark.usefixtures("worker")
def test_with_no_lane_moving_a_query_due_past_the_grace_period_is_resent(tenant, hook, webhook_receiver):
    # The lane last moved 60 s ago, far behind: nothing is queued ahead of the query, so its message is lost.
    _lane(frontier_ago=300, progress_ago=60)
    lost = _due_query(tenant, due_ago=45)
    recent = _due_query(tenant, due_ago=5, prefix="recent")
    document_query_sweep()
    wait_until(
        lambda: DocumentQuery.objects.get(id=lost.id).status == QueryStatus.COMPLETED, message="re-sent query ran"
    )
    recent.refresh_from_db()
    assert recent.status == QueryStatus.PROCESSING  # within the grace period: left to the fast path


@pytest.mark.django_db
def test_a_lost_express_query_is_sent_again_on_the_ordinary_lane_and_is_express_no_more(tenant):
    """The sweeper re-sends to the ordinary lane: the query no longer counts as an express one waiting for a
    worker (a parse segment stops for those, bulkimport.services.parse)."""
    _lane(frontier_ago=5, progress_ago=1)
    lost = _due_query(tenant, due_ago=60)
    DocumentQuery.objects.filter(id=lost.id).update(express=True)
    document_query_sweep()
    lost.refresh_from_db()
    assert lost.express is False
    assert lost.next_attempt_at > timezone.now() - timedelta(seconds=GRACE)  # made due now: re-sent


@pytest.mark.django_db
def test_the_slowest_moving_lane_bounds_what_is_lost():
    now = timezone.now()
    assert lost_before(now) == now - timedelta(seconds=GRACE)  # no lane yet: the grace period alone
    _lane(lane="fast", frontier_ago=2, progress_ago=1)
    _lane(lane="slow", frontier_ago=100, progress_ago=3)
    _lane(lane="stalled", frontier_ago=900, progress_ago=GRACE + 10)  # not moving: says nothing
    bound = lost_before(timezone.now())
    expected = LaneProgress.objects.get(lane="slow").frontier - timedelta(seconds=GRACE)
    assert bound == expected


@pytest.mark.django_db
def test_a_lane_held_back_moves_and_keeps_its_frontier():
    _lane(lane="held", frontier_ago=300, progress_ago=60)
    frontier = LaneProgress.objects.get(lane="held").frontier
    lane_held_back("held")
    lane_held_back("never-begun")
    now = timezone.now()
    held, new = LaneProgress.objects.get(lane="held"), LaneProgress.objects.get(lane="never-begun")
    assert held.frontier == frontier and held.progress_at > now - timedelta(seconds=5)
    assert new.frontier < now - timedelta(days=365) and new.progress_at > now - timedelta(seconds=5)
    # Both move now: the slowest frontier bounds what is lost, and no query is due before a lane never begun.
    assert lost_before(now) == new.frontier - timedelta(seconds=GRACE)


@pytest.mark.django_db
def test_queries_queued_behind_the_bulk_chunks_being_applied_are_not_lost(tenant):
    """Bulk chunks come before the later chunks' queries (priority 1 before 2): while workers apply a long
    import, no query lane begins a message for minutes, yet the queries due meanwhile are queued behind the
    chunks, not lost. Applying a chunk holds the queries' lane back."""
    from bulkimport import services as bulk_services
    from bulkimport.models import BulkChunk

    _lane(frontier_ago=300, progress_ago=60)  # the queries' lane began its last message a minute ago
    frontier = LaneProgress.objects.get(lane=QUEUE).frontier
    queued = _due_query(tenant, due_ago=45)
    before = queued.next_attempt_at
    request = submit(tenant, csv_bytes([person("Ana")]))
    bulk_services.bulk_request_parse(request_id=request.id)
    (chunk_id,) = BulkChunk.objects.filter(request_id=request.id).values_list("id", flat=True)
    bulk_services.bulk_chunk_apply(chunk_id=chunk_id)
    progress = LaneProgress.objects.get(lane=QUEUE)
    assert progress.frontier == frontier and progress.progress_at > timezone.now() - timedelta(seconds=5)
    document_query_sweep()
    queued.refresh_from_db()
    assert queued.next_attempt_at == before  # left to its message, not made due again and re-sent


@pytest.mark.django_db
def test_a_lane_frontier_only_moves_forward_and_a_message_without_a_time_says_nothing():
    first = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)
    lane_reached("lane-a", first.timestamp())
    begun = LaneProgress.objects.get(lane="lane-a").progress_at
    lane_reached("lane-a", (first - timedelta(minutes=5)).timestamp())  # an older message, begun late
    progress = LaneProgress.objects.get(lane="lane-a")
    assert progress.frontier == first
    assert progress.progress_at > begun  # but the lane did move
    lane_reached("lane-b", None)
    assert not LaneProgress.objects.filter(lane="lane-b").exists()
    lane_reached("lane-a", (first + timedelta(seconds=1)).timestamp())
    assert LaneProgress.objects.get(lane="lane-a").frontier == first + timedelta(seconds=1)


@pytest.mark.django_db
def test_a_long_message_marks_its_lane_again_while_it_runs(monkeypatch):
    queued_at = timezone.now().timestamp()
    mark = LaneMark("lane-long", queued_at)
    begun = LaneProgress.objects.get(lane="lane-long").progress_at
    mark.again()  # within TOUCH_SECONDS: nothing written
    assert LaneProgress.objects.get(lane="lane-long").progress_at == begun
    monkeypatch.setattr(lanes_module, "TOUCH_SECONDS", 0.0)
    mark.again()
    assert LaneProgress.objects.get(lane="lane-long").progress_at > begun


@pytest.mark.usefixtures("worker")
def test_a_worker_records_the_lane_of_each_message_it_begins(tenant, hook, webhook_receiver):
    patients = make_patients(tenant.customer, 2)
    sent = timezone.now()
    with transaction.atomic():
        document_queries_start(
            customer_id=tenant.customer.id, patient_ids=[p.id for p in patients], bulk_request_id=uuid.uuid4()
        )
    wait_until(lambda: not DocumentQuery.objects.filter(status=QueryStatus.PROCESSING).exists(), message="queries ran")
    progress = LaneProgress.objects.get(lane=QUEUE)
    # The message entered the lane when its delay (the sandbox's answer time) was over.
    assert progress.frontier >= sent
    assert progress.frontier <= DocumentQuery.objects.order_by("finished_at").first().finished_at + timedelta(seconds=1)


@pytest.mark.real_services
@pytest.mark.django_db(transaction=True)
def test_a_batch_held_by_one_worker_is_passed_over_by_another(tenant):
    """PostgreSQL claims by row lock: a second claim of the same batch while the first holds it takes nothing
    and does not wait; once the first rolls back (a worker died), the batch is claimable again."""
    patients = make_patients(tenant.customer, 3)
    now = timezone.now()
    queries = DocumentQuery.objects.bulk_create(
        [DocumentQuery(customer=tenant.customer, patient=p, next_attempt_at=now) for p in patients]
    )
    ids = [str(q.id) for q in queries]
    due, lease = now + timedelta(seconds=1), now + timedelta(minutes=2)
    held, second = threading.Event(), {}

    def other_worker() -> None:
        held.wait(10)
        try:
            with transaction.atomic():
                second["claimed"] = store().claim_batch(ids, due=due, lease_until=lease)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    with transaction.atomic():
        first = store().claim_batch(ids, due=due, lease_until=lease)
        held.set()
        thread.join(10)
        transaction.set_rollback(True)  # the first worker dies mid-batch
    assert sorted(str(q.id) for q in first) == sorted(ids)
    assert second["claimed"] == []
    with transaction.atomic():
        assert len(store().claim_batch(ids, due=due, lease_until=lease)) == 3


@pytest.mark.real_services
@pytest.mark.django_db(transaction=True)
def test_a_claimed_batch_holds_its_queries_not_their_patients(tenant):
    """The claim locks the query rows only: while a worker holds a batch, an import can still write the
    batch's patients (a lock on them would make each chunk wait for the queries of the patients it updates).
    And the claim reads each patient's values (what the backend call and the webhook need)."""
    patients = make_patients(tenant.customer, 2)
    now = timezone.now()
    queries = DocumentQuery.objects.bulk_create(
        [DocumentQuery(customer=tenant.customer, patient=p, next_attempt_at=now) for p in patients]
    )
    ids = [str(q.id) for q in queries]
    held, outcome = threading.Event(), {}

    def importer() -> None:
        held.wait(10)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
                # NOWAIT: a lock held by the claim fails here at once instead of passing unnoticed.
                cursor.execute(
                    "SELECT id FROM patients_patient WHERE id = ANY(%s) FOR UPDATE NOWAIT", [[p.id for p in patients]]
                )
                outcome["patients"] = len(cursor.fetchall())
                cursor.execute(
                    "SELECT id FROM docqueries_documentquery WHERE id = ANY(%s) FOR UPDATE SKIP LOCKED", [ids]
                )
                outcome["queries"] = len(cursor.fetchall())
        except Exception as exc:  # noqa: BLE001 - reported to the assertion below
            outcome["error"] = repr(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=importer)
    thread.start()
    with transaction.atomic():
        claimed = store().claim_batch(ids, due=now + timedelta(seconds=1), lease_until=now + timedelta(minutes=2))
        held.set()
        thread.join(10)
    assert outcome == {"patients": 2, "queries": 0}  # the patients free, the queries held
    by_patient = {c.patient_id: c for c in claimed}
    for patient in patients:
        assert by_patient[patient.id].patient.first_name == patient.first_name
        assert by_patient[patient.id].patient.dob == patient.dob
        assert by_patient[patient.id].patient.addresses == patient.addresses
