"""bulkimport's figures for /metrics (metriport_bulk.ops.metrics): requests by status, rows processed, chunks
waiting."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Min, Sum
from prometheus_client.core import CounterMetricFamily

from bulkimport.models import BulkChunk, BulkRequest, BulkStatus, ChunkStatus
from metriport_bulk.ops.metrics import StateFigures, gauge_by_status


def state_figures(now: datetime) -> StateFigures:
    by_status = dict(BulkRequest.objects.values_list("status").annotate(n=Count("id")).order_by())
    rows = CounterMetricFamily("metriport_bulk_rows_processed", "Rows processed by bulk requests.")
    rows.add_metric([], BulkRequest.objects.aggregate(n=Sum("processed"))["n"] or 0)
    chunks = BulkChunk.objects.filter(status=ChunkStatus.PENDING, request__status=BulkStatus.PROCESSING).aggregate(
        n=Count("pk"), first=Min("enqueued_at")
    )
    return StateFigures(
        families=[
            gauge_by_status("metriport_bulk_bulk_requests", "Bulk requests by status.", by_status, BulkStatus.values),
            rows,
        ],
        pending=[("chunks", chunks["n"], chunks["first"])],
    )
