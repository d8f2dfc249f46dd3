"""The bulk request state machine. Every status change is one conditional UPDATE, so two workers or two
uploads can never both start (or both finish) the same request."""

from __future__ import annotations

from django.utils import timezone

from bulkimport.models import BulkRequest, BulkStatus

ALLOWED: dict[str, set[str]] = {
    # waiting -> failed: cancelled by the customer before any upload.
    BulkStatus.WAITING: {BulkStatus.PROCESSING, BulkStatus.EXPIRED, BulkStatus.FAILED},
    BulkStatus.PROCESSING: {BulkStatus.COMPLETED, BulkStatus.FAILED},
    BulkStatus.COMPLETED: set(),
    BulkStatus.FAILED: set(),
    BulkStatus.EXPIRED: set(),
}


class IllegalTransition(ValueError):
    pass


def transition(request_id, *, source: str, target: str, **fields) -> bool:
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
