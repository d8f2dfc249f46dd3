"""/metrics (SPEC §12) in Prometheus' text format, with prometheus-client.

Two kinds of figures:
- per web process: HTTP requests by route pattern, method and status (`RequestMetricsMiddleware`). Routes are
  URL patterns (`medical/v1/patient/<str:patient_id>`), never paths, so no id reaches a label. Under several
  gunicorn workers set PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode) to add them up.
- read from the database and the broker at scrape time (`StateCollector`), so they are the same whichever
  process answers: bulk requests by status, rows processed, Document Queries by status, webhook messages by
  status and delivery attempts by outcome, pending work and the age of the oldest item per kind, and broker
  queue depths.
Workers can expose Dramatiq's own Prometheus middleware as well (DRAMATIQ_PROMETHEUS=true, port 9191).
No label or value carries PHI: counts, statuses, queue names and route patterns only.
"""

from __future__ import annotations

import hmac
import logging
import os
import time

import dramatiq
from django.conf import settings
from django.db.models import Count, Min, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from metriport_bulk.api.errors import envelope, json_405

logger = logging.getLogger(__name__)

HTTP_REQUESTS = Counter(
    "metriport_bulk_http_requests_total", "HTTP requests answered, by route pattern, method and status.",
    ["route", "method", "status"],
)  # fmt: skip
HTTP_LATENCY = Histogram(
    "metriport_bulk_http_request_duration_seconds", "Time to answer an HTTP request, by route pattern.", ["route"]
)


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    if request.path.startswith("/admin/"):
        return "admin"  # the admin's own patterns are many and say nothing useful here
    return match.route or match.view_name or "unmatched"


class RequestMetricsMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        started = time.perf_counter()
        response = self.get_response(request)
        route = _route(request)
        HTTP_REQUESTS.labels(route=route, method=request.method, status=str(response.status_code)).inc()
        HTTP_LATENCY.labels(route=route).observe(time.perf_counter() - started)
        return response


def _queue_depths() -> dict[str, int]:
    """Messages waiting in each broker queue (Redis, RabbitMQ or the in-process stub)."""
    broker = dramatiq.get_broker()
    depths: dict[str, int] = {}
    for queue in sorted(broker.get_declared_queues()):
        client = getattr(broker, "client", None)
        if client is not None:  # Redis: the queue's message hash holds every message not yet acknowledged
            namespace = broker.namespace  # type: ignore[attr-defined]  # a RedisBroker: the broker with a client
            depths[queue] = int(client.hlen(f"{namespace}:{queue}.msgs"))
        elif hasattr(broker, "get_queue_message_counts"):  # RabbitMQ
            depths[queue] = int(broker.get_queue_message_counts(queue)[0])
        elif hasattr(broker, "queues"):  # StubBroker
            depths[queue] = broker.queues[queue].qsize()
    return depths


class StateCollector(Collector):
    """Figures read at scrape time from the database (the source of truth) and the broker."""

    def collect(self):
        from bulkimport.models import BulkChunk, BulkRequest, BulkStatus, ChunkStatus
        from docqueries.models import DocumentQuery, QueryStatus
        from webhooks.models import DeliveryAttempt, MessageStatus, WebhookMessage

        now = timezone.now()
        requests = GaugeMetricFamily("metriport_bulk_bulk_requests", "Bulk requests by status.", labels=["status"])
        by_status = dict(BulkRequest.objects.values_list("status").annotate(n=Count("id")).order_by())
        for status in BulkStatus.values:
            requests.add_metric([status], by_status.get(status, 0))
        yield requests
        rows = CounterMetricFamily("metriport_bulk_rows_processed", "Rows processed by bulk requests.")
        rows.add_metric([], BulkRequest.objects.aggregate(n=Sum("processed"))["n"] or 0)
        yield rows

        queries = GaugeMetricFamily("metriport_bulk_document_queries", "Document Queries by status.", labels=["status"])
        query_counts = dict(DocumentQuery.objects.values_list("status").annotate(n=Count("id")).order_by())
        for status in QueryStatus.values:
            queries.add_metric([status], query_counts.get(status, 0))
        yield queries

        messages = GaugeMetricFamily(
            "metriport_bulk_webhook_messages", "Webhook messages by status.", labels=["status"]
        )
        message_counts = dict(WebhookMessage.objects.values_list("status").annotate(n=Count("id")).order_by())
        for status in MessageStatus.values:
            messages.add_metric([status], message_counts.get(status, 0))
        yield messages
        attempts = CounterMetricFamily(
            "metriport_bulk_webhook_attempts", "Webhook delivery attempts by outcome.", labels=["outcome"]
        )
        delivered = DeliveryAttempt.objects.filter(succeeded=True).count()
        attempts.add_metric(["delivered"], delivered)
        attempts.add_metric(["failed"], DeliveryAttempt.objects.count() - delivered)
        yield attempts

        pending = GaugeMetricFamily("metriport_bulk_pending_work", "Work not yet done, by kind.", labels=["kind"])
        oldest = GaugeMetricFamily(
            "metriport_bulk_oldest_pending_age_seconds",
            "Age of the oldest work item waiting, by kind (0 when none waits).",
            labels=["kind"],
        )
        chunks = BulkChunk.objects.filter(status=ChunkStatus.PENDING, request__status=BulkStatus.PROCESSING)
        due_queries = DocumentQuery.objects.filter(status=QueryStatus.PROCESSING, next_attempt_at__lte=now)
        due_webhooks = WebhookMessage.objects.filter(status=MessageStatus.PENDING, next_attempt_at__lte=now)
        for kind, queryset, field in (
            ("chunks", chunks, "enqueued_at"),
            ("document_queries", due_queries, "next_attempt_at"),
            ("webhooks", due_webhooks, "next_attempt_at"),
        ):
            summary = queryset.aggregate(n=Count("pk"), first=Min(field))
            pending.add_metric([kind], summary["n"])
            first = summary["first"]
            oldest.add_metric([kind], max((now - first).total_seconds(), 0.0) if first else 0.0)
        yield pending
        yield oldest

        depth = GaugeMetricFamily("metriport_bulk_queue_depth", "Messages waiting in a broker queue.", labels=["queue"])
        try:
            for queue, n in _queue_depths().items():
                depth.add_metric([queue], n)
        except Exception as exc:  # noqa: BLE001 - an unreachable broker must not break the other figures
            logger.warning("metrics: broker queue depths unavailable (%s)", type(exc).__name__)
        yield depth


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(HTTP_REQUESTS)
        registry.register(HTTP_LATENCY)
    registry.register(StateCollector())
    return registry


def _authorized(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return True
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), token.encode())


@csrf_exempt
def metrics(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return json_405(request, allowed=["GET", "HEAD"])
    if not _authorized(request):
        return JsonResponse(envelope(401, "Send the METRICS_TOKEN as 'Authorization: Bearer <token>'."), status=401)
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
