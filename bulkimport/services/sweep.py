"""The sweeper (a scheduler job, SPEC §5): notices uploads, expires requests never uploaded, settles
cancellations, and resumes processing requests whose worker went away. Every step it re-sends is
idempotent, so a duplicate send (the original worker was merely slow) costs only a no-op."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from bulkimport.models import BulkChunk, BulkParseSegment, BulkPhase, BulkRequest, BulkStatus, ChunkStatus
from bulkimport.services import dispatch
from bulkimport.services.finish import bulk_documents_check
from bulkimport.services.operations import bulk_cancellations_settle
from bulkimport.services.upload import bulk_requests_expire
from bulkimport.states import phase_transition


def bulk_sweep() -> None:
    """Scheduler job: notice uploads, expire, and resume processing requests whose worker went away."""
    bulk_requests_expire()  # polls S3 uploads first
    bulk_requests_resume()
    bulk_cancellations_settle()


def bulk_requests_resume(*, force: bool = False, request_id: uuid.UUID | None = None) -> int:
    """Re-sends the next step of stale processing requests (all of them, or only `request_id`; `force`:
    whatever their heartbeat says). Returns how many steps were re-sent."""
    now = timezone.now()
    stale = now - timedelta(seconds=0 if force else settings.BULK_STALE_SECONDS)
    requests = BulkRequest.objects.filter(status=BulkStatus.PROCESSING)
    if request_id is not None:
        requests = requests.filter(id=request_id)
    resumed = 0
    for request in requests.only("id", "phase", "heartbeat_at"):
        quiet = force or request.heartbeat_at is None or request.heartbeat_at < stale
        segments = None
        if request.phase == BulkPhase.PARSING and not force:
            segments = _resume_segments(request.id, now=now, stale=stale)
        if segments is not None:
            resumed += segments
        elif request.phase == BulkPhase.PARSING and quiet:
            # A parse never begun is sent now: workers on other requests' segments stop for it again
            # (services.parse._another_request_waits), and the next send waits a stale period. A begun one's
            # lease is left stale, or released when forced, so this message takes it over.
            this = BulkRequest.objects.filter(id=request.id)
            this.filter(parse_attempts=0).update(heartbeat_at=now)
            if force:
                this.filter(parse_attempts__gt=0).update(heartbeat_at=None)
            dispatch.parse_now(request.id)  # from the start (a parse that ended in its segments' plan included)
            resumed += 1
        elif request.phase == BulkPhase.APPLYING:
            resumed += _resume_chunks(request.id, now=now, stale=stale)
        elif request.phase == BulkPhase.DOCUMENTS:
            resumed += bulk_documents_check(request_ids=[request.id])
        elif request.phase == BulkPhase.FINISHING and quiet:
            # Sent now: parses in segments stop for it again, as for a parse never begun.
            BulkRequest.objects.filter(id=request.id, phase=BulkPhase.FINISHING).update(finish_sent_at=now)
            dispatch.finish_now(request.id)
            resumed += 1
    return resumed


def _resume_segments(request_id: uuid.UUID, *, now: datetime, stale: datetime) -> int | None:
    """Sends workers to the segments of a parse in segments (services.parse) when none is on them: no
    segment heartbeating since `stale` and no message sent since. Their messages take any segment left,
    a crashed worker's included once its heartbeat is stale. Returns how many steps were re-sent (0 or 1),
    or None when the parse has no segment left to do (not in segments, or all of them done)."""
    left = BulkParseSegment.objects.filter(request_id=request_id, done_at__isnull=True)
    found = left.aggregate(token=Max("token"), beat=Max("heartbeat_at"), sent=Max("enqueued_at"))
    if found["token"] is None:
        return None
    if any(at is not None and at >= stale for at in (found["beat"], found["sent"])):
        return 0
    token = found["token"]
    if not left.update(enqueued_at=now):
        return 0
    dispatch.segments_now(request_id, token, count=max(settings.BULK_PARSE_PARALLEL, 1))
    return 1


def _resume_chunks(request_id: uuid.UUID, *, now: datetime, stale: datetime) -> int:
    """Re-sends the chunks nobody touched since `stale`; moves on to finishing when none is pending (the
    last chunk's worker died after its commit, before sending the finish)."""
    pending = BulkChunk.objects.filter(request_id=request_id, status=ChunkStatus.PENDING)
    if not pending.exists():
        if phase_transition(request_id, source=BulkPhase.APPLYING, target=BulkPhase.FINISHING):
            dispatch.finish_now(request_id)
            return 1
        return 0
    stuck = list(
        pending.filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale), updated_at__lt=stale).values_list(
            "id", flat=True
        )
    )
    if not stuck:
        return 0
    BulkChunk.objects.filter(id__in=stuck).update(enqueued_at=now)
    dispatch.chunks_now(stuck)
    return 1
