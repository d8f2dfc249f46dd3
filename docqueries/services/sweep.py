"""The scheduler job that resumes Document Queries whose actor message was lost."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from docqueries.models import DocumentQuery, QueryStatus
from docqueries.services.dispatch import dispatch_on_commit

logger = logging.getLogger(__name__)

SWEEP_BATCH_SIZE = 2_000


def document_query_sweep() -> None:
    """Scheduler job: resumes processing queries left past their `next_attempt_at` (an actor message lost, a
    worker died mid-call). Each is made due now and re-dispatched; the claim makes duplicates harmless, and
    the grace period keeps the sweeper from re-sending what the fast path is about to do."""
    now = timezone.now()
    with transaction.atomic():
        stuck = list(
            DocumentQuery.objects.select_for_update(skip_locked=True)
            .filter(
                status=QueryStatus.PROCESSING,
                next_attempt_at__lte=now - timedelta(seconds=settings.DOCQUERY_SWEEP_GRACE_SECONDS),
            )
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:SWEEP_BATCH_SIZE]
        )
        if not stuck:
            return
        DocumentQuery.objects.filter(id__in=stuck).update(next_attempt_at=now)
        dispatch_on_commit(stuck)
    logger.info("document query sweep resumed %s queries", len(stuck))
