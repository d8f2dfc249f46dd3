"""/readyz (SPEC §12): is every service this process needs reachable? Database, broker, storage, each with
a short timeout, answered 200 or 503 naming the ones that are not. Error texts are exception class names
only: a connection string can hold a password."""

from __future__ import annotations

import logging
from collections.abc import Callable

import dramatiq
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from metriport_bulk.api.errors import json_405
from metriport_bulk.lib import storage

logger = logging.getLogger(__name__)


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    broker = dramatiq.get_broker()
    client = getattr(broker, "client", None)  # Redis
    if client is not None:
        client.ping()
        return
    if hasattr(broker, "connection"):  # RabbitMQ: opening (or reusing) the connection is the check
        broker.connection  # noqa: B018 - the property connects
    # The stub broker of the embedded default is in process: always there.


def _storage() -> None:
    storage.object_size("readyz-probe")  # a HEAD on S3, a stat locally: None when absent, raises when down


CHECKS: dict[str, Callable[[], None]] = {"database": _database, "broker": _broker, "storage": _storage}


@csrf_exempt
def readyz(request: HttpRequest) -> JsonResponse:
    if request.method not in ("GET", "HEAD"):
        return json_405(request, allowed=["GET", "HEAD"])
    checks: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            logger.warning("readyz: %s unreachable (%s)", name, type(exc).__name__)
            checks[name] = f"unreachable ({type(exc).__name__})"
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        return JsonResponse({"status": "unavailable", "unavailable": down, "checks": checks}, status=503)
    return JsonResponse({"status": "ok", "checks": checks})
