"""How far the workers have got through each queue (lane) of Document Query messages, and what the sweeper
may therefore call lost.

A query whose step is due but unclaimed is either lost (its message never reached the broker, or the broker
lost it) or merely queued behind other messages. Time alone cannot tell them apart: behind a million-row
import's backlog a query waits minutes, and a sweeper re-sending everything due for longer than its grace
period re-sent thousands of queued queries every tick (each made due again and sent once more; the claim made
the copies harmless, but at a million rows they were the statement that cost the most).

Messages enter a lane in the order of the time they become due (sent, or their delay over), and workers take
them first in, first out. So every message records when it entered its lane (`queued_at`), and workers
record, as they begin one, the latest such time they have reached (the lane's frontier). A due query is lost
when a lane that is moving has passed it (due more than the grace period before that lane's frontier: the
grace covers prefetched messages and clocks); when no lane has moved within the grace period, anything due
longer than that is lost, as before.

A lane also moves while workers are busy with messages that come before its own: bulk chunks (priority 1)
before the later chunks' queries (2). Its frontier then stays where it was, so nothing queued behind it reads
as lost; otherwise no lane would move for a million-row import's whole apply, and the sweeper would re-send
every query queued meanwhile, at every tick."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Min, QuerySet, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from docqueries.models import DocumentQuery, LaneProgress, QueryStatus
from docqueries.services.dispatch import LANE

# A worker in the middle of one long message (a batch of gateway calls) says this often that its lane is
# still moving.
TOUCH_SECONDS = 5.0


def lane_reached(lane: str, queued_at: float | None) -> None:
    """Workers began a message of `lane` that entered it at `queued_at` (epoch seconds; None: a message sent
    before lanes recorded it, which says nothing). The frontier never moves back."""
    if queued_at is None:
        return
    reached = datetime.fromtimestamp(queued_at, tz=UTC)
    now = timezone.now()
    moved = LaneProgress.objects.filter(lane=lane).update(
        frontier=Greatest("frontier", Value(reached, output_field=models.DateTimeField())), progress_at=now
    )
    if not moved:
        # The lane's first message: a concurrent first one of another worker may win, which says as much.
        LaneProgress.objects.bulk_create(
            [LaneProgress(lane=lane, frontier=reached, progress_at=now)], ignore_conflicts=True
        )


# The frontier of a lane no worker has begun a message of: before any query's step.
_BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)


def lane_held_back(lane: str) -> None:
    """Workers are busy with messages that come before `lane`'s: the lane counts as moving, its frontier
    where it was (or before anything, for a lane never begun)."""
    now = timezone.now()
    if not LaneProgress.objects.filter(lane=lane).update(progress_at=now):
        # A concurrent first one may win, which says as much.
        LaneProgress.objects.bulk_create(
            [LaneProgress(lane=lane, frontier=_BEGINNING, progress_at=now)], ignore_conflicts=True
        )


def document_queries_held_back() -> None:
    """Workers are applying a bulk chunk, which comes before the later chunks' queries: those queries wait
    behind it, they are not lost."""
    lane_held_back(LANE)


def express_queries_waiting(*, since: datetime, besides: uuid.UUID) -> QuerySet[DocumentQuery]:
    """The express queries (a bulk request's first chunk, a single patient) of another request than `besides`,
    or of none, whose first step came due since `since` and that no worker has taken: their messages wait in
    the express lane, perhaps prefetched by a worker busy with something long. A step due before `since` counts
    no more (its message may be lost). A worker's claim moves the step past its lease (a batch of the
    sandbox's on PostgreSQL holds row locks instead, for the batch's fraction of a second). A poll or a retry
    counts an attempt, and a query sent again to the ordinary lane (the sweeper's, a customer's rate limit) is
    express no more: none of them counts then. The later batches of an express chain (dispatch.express_continue
    sends each when the one before has run) count while they wait for their turn too, though their message is
    not sent yet: a segment may stop for them to no purpose, within the same window. A query set, so that a
    caller may ask it in one statement with its own (bulkimport.services.parse.waiting_elsewhere)."""
    now = timezone.now()
    waiting = DocumentQuery.objects.filter(
        status=QueryStatus.PROCESSING, express=True, attempts=0, next_attempt_at__range=(since, now)
    )
    return waiting.exclude(bulk_request_id=besides)


def lost_before(now: datetime) -> datetime:
    """A processing query due before this time has no message left in any lane (the sweeper re-sends it):
    due longer than the grace period ago, and passed by every lane that moved within the grace period."""
    grace = timedelta(seconds=settings.DOCQUERY_SWEEP_GRACE_SECONDS)
    slowest: datetime | None = LaneProgress.objects.filter(progress_at__gte=now - grace).aggregate(
        frontier=Min("frontier")
    )["frontier"]
    return min(now, slowest or now) - grace


class LaneMark:
    """A message of `lane` begun: recorded at once (lane_reached), and again at most every TOUCH_SECONDS while
    it runs (`again`), so a lane busy with long messages (batches of gateway calls) still reads as moving."""

    def __init__(self, lane: str | None, queued_at: float | None) -> None:
        self.lane, self.queued_at = lane, queued_at
        self.marked = time.monotonic()
        if lane:
            lane_reached(lane, queued_at)

    def again(self) -> None:
        if self.lane and time.monotonic() - self.marked >= TOUCH_SECONDS:
            self.marked = time.monotonic()
            lane_reached(self.lane, self.queued_at)
