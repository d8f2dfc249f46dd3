"""What a bulk request asks about the Document Queries started for it."""

from __future__ import annotations

import uuid

from django.db.models import Count

from docqueries.models import DocumentQuery, QueryStatus
from docqueries.store import store


def bulk_queries_open(*, bulk_request_id: uuid.UUID, after: uuid.UUID | None = None) -> bool:
    """Whether any Document Query started for the bulk request is still processing. `after`: a query of the
    request that just ended. The queries near where the request's queries run are looked at first (the
    store's processing_nearby: those started after `after`, or the last ones started): while they run, one of
    them is processing, and that probe costs a few index entries however many of the request's queries have
    ended. Only when it finds none is every query of the request looked at."""
    if store().processing_nearby(bulk_request_id, after):
        return True
    return DocumentQuery.objects.filter(bulk_request_id=bulk_request_id, status=QueryStatus.PROCESSING).exists()


def bulk_query_counts(*, bulk_request_id: uuid.UUID) -> dict[str, int]:
    """{total, completed, failed, pending} of the queries started for the bulk request (GET, admin)."""
    counts: dict[str, int] = dict(
        DocumentQuery.objects.filter(bulk_request_id=bulk_request_id)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    completed, failed = counts.get(QueryStatus.COMPLETED, 0), counts.get(QueryStatus.FAILED, 0)
    pending = counts.get(QueryStatus.PROCESSING, 0)
    return {"total": completed + failed + pending, "completed": completed, "failed": failed, "pending": pending}


def bulk_queries_started(*, bulk_request_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Bulk request id -> the Document Queries started for it so far (requests with none are left out)."""
    return dict(
        DocumentQuery.objects.filter(bulk_request_id__in=bulk_request_ids)
        .values_list("bulk_request_id")
        .annotate(n=Count("id"))
        .order_by()
    )
