"""docqueries' figures for /metrics (metriport_bulk.ops.metrics): Document Queries by status, queries due."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Min

from docqueries.models import DocumentQuery, QueryStatus
from metriport_bulk.ops.metrics import StateFigures, gauge_by_status


def state_figures(now: datetime) -> StateFigures:
    counts = dict(DocumentQuery.objects.values_list("status").annotate(n=Count("id")).order_by())
    due = DocumentQuery.objects.filter(status=QueryStatus.PROCESSING, next_attempt_at__lte=now).aggregate(
        n=Count("pk"), first=Min("next_attempt_at")
    )
    return StateFigures(
        families=[
            gauge_by_status(
                "metriport_bulk_document_queries", "Document Queries by status.", counts, QueryStatus.values
            )
        ],
        pending=[("document_queries", due["n"], due["first"])],
    )
