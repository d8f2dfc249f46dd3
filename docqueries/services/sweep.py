"""The scheduler job that resumes Document Queries whose actor message was lost."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from docqueries.models import DocumentQuery, QueryStatus
from docqueries.services.dispatch import dispatch_on_commit
from docqueries.services.lanes import lost_before

logger = logging.getLogger(__name__)

SWEEP_BATCH_SIZE = 2_000


def document_query_sweep() -> None:
    """Scheduler job: resumes processing queries left past their `next_attempt_at` (an actor message lost, a
    worker died mid-call). Each is made due now and re-dispatched; the claim makes duplicates harmless. A
    query still queued is left to its message: the grace period covers the fast path about to run it, and
    the lanes' progress a backlog it waits behind (services.lanes)."""
    now = timezone.now()
    with transaction.atomic():
        stuck = list(
            DocumentQuery.objects.select_for_update(skip_locked=True)
            .filter(status=QueryStatus.PROCESSING, next_attempt_at__lte=lost_before(now))
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:SWEEP_BATCH_SIZE]
        )
        if not stuck:
            return
        # Sent again to the ordinary lane: no longer an express query waiting (services.lanes).
        DocumentQuery.objects.filter(id__in=stuck).update(next_attempt_at=now, express=False)
        dispatch_on_commit(stuck)
    logger.info("document query sweep resumed %s queries", len(stuck))
