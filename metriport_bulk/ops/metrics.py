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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import dramatiq
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
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


@dataclass
class StateFigures:
    """What one app reports at scrape time: its metric families, and its kinds of pending work as
    (kind, how many wait, when the oldest was due) for the shared pending-work gauges."""

    families: list[Metric] = field(default_factory=list)
    pending: list[tuple[str, int, datetime | None]] = field(default_factory=list)


def gauge_by_status(name: str, documentation: str, counts: dict[str, int], statuses: list[str]) -> GaugeMetricFamily:
    """A gauge with one sample per status (0 for a status nobody is in)."""
    gauge = GaugeMetricFamily(name, documentation, labels=["status"])
    for status in statuses:
        gauge.add_metric([status], counts.get(status, 0))
    return gauge


class StateCollector(Collector):
    """Figures read at scrape time from the database (the source of truth) and the broker. Each app reports its
    own (METRICS_SOURCES: `<app>.metrics.state_figures`); this module knows none of them."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        pending = GaugeMetricFamily("metriport_bulk_pending_work", "Work not yet done, by kind.", labels=["kind"])
        oldest = GaugeMetricFamily(
            "metriport_bulk_oldest_pending_age_seconds",
            "Age of the oldest work item waiting, by kind (0 when none waits).",
            labels=["kind"],
        )
        for path in settings.METRICS_SOURCES:
            figures: StateFigures = import_string(path)(now)
            yield from figures.families
            for kind, count, first in figures.pending:
                pending.add_metric([kind], count)
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
