"""The bulk request state machine: its status (what the customer sees) and, while it is processing, its phase
(which pipeline step runs; what the sweeper resumes). Every change of either is one conditional UPDATE, so
two workers or two uploads can never both start (or both finish) the same request or step."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Q
from django.utils import timezone

from bulkimport.models import BulkPhase, BulkRequest, BulkStatus

ALLOWED: dict[str, set[str]] = {
    # waiting -> failed: cancelled by the customer before any upload, or an upload refused before
    # processing (a file above the size limit).
    BulkStatus.WAITING: {BulkStatus.PROCESSING, BulkStatus.EXPIRED, BulkStatus.FAILED},
    BulkStatus.PROCESSING: {BulkStatus.COMPLETED, BulkStatus.FAILED},
    # completed -> processing: a reprocess (services.reprocess) runs the pipeline's steps again.
    BulkStatus.COMPLETED: {BulkStatus.PROCESSING},
    BulkStatus.FAILED: set(),
    BulkStatus.EXPIRED: set(),
}

# The steps of a processing request. A status change to an end state sets the phase `done` itself.
PHASES: dict[str, set[str]] = {
    # A dry run (or a file with no valid row to apply) goes from parsing straight to finishing.
    BulkPhase.PARSING: {BulkPhase.APPLYING, BulkPhase.FINISHING},
    BulkPhase.APPLYING: {BulkPhase.FINISHING},
    # Finishing finds Document Queries still open: wait for them; their end moves the request back.
    BulkPhase.FINISHING: {BulkPhase.DOCUMENTS},
    BulkPhase.DOCUMENTS: {BulkPhase.FINISHING},
}


class IllegalTransition(ValueError):
    pass


def transition(request_id: uuid.UUID, *, source: str, target: str, **fields: Any) -> bool:
    """Moves the request from `source` to `target` (and sets `fields`) only if it is still in `source`.

    Returns True when this caller made the change, False when someone else did first (or it never was in
    `source`). Raises IllegalTransition for a transition the machine does not allow.
    """
    if target not in ALLOWED[source]:
        raise IllegalTransition(f"{source} -> {target} is not allowed")
    now = timezone.now()
    if target == BulkStatus.PROCESSING:
        fields.setdefault("started_at", now)
    if target in (BulkStatus.COMPLETED, BulkStatus.FAILED, BulkStatus.EXPIRED):
        fields.setdefault("finished_at", now)
    fields.setdefault("heartbeat_at", now)
    return BulkRequest.objects.filter(id=request_id, status=source).update(status=target, **fields) == 1


def phase_transition(request_id: uuid.UUID, *, source: str, target: str, guard: Q | None = None, **fields: Any) -> bool:
    """Moves a processing request from phase `source` to `target` (and sets `fields`) only if it is still
    there (and matches `guard`, e.g. the parse lease's fencing token). True when this caller made the move;
    the caller then sends the next step's message, so exactly one does."""
    if target not in PHASES.get(source, set()):
        raise IllegalTransition(f"phase {source or 'none'} -> {target} is not allowed")
    now = timezone.now()
    fields.setdefault("heartbeat_at", now)
    # The caller sends the finish's message on entering `finishing`; any other move leaves none waiting.
    fields.setdefault("finish_sent_at", now if target == BulkPhase.FINISHING else None)
    requests = BulkRequest.objects.filter(id=request_id, status=BulkStatus.PROCESSING, phase=source)
    if guard is not None:
        requests = requests.filter(guard)
    return requests.update(phase=target, **fields) == 1
