"""A broker outage never turns a committed call into a 5xx (issue 23, defect 3).

The broker here is really unreachable: every actor is pointed at this test's own redis-server, which the test
kills (a closed port) and later restarts on the same port. The shared broker is never touched.

Failure modes covered: an upload PUT, a dry run's confirm and a patient create (which starts a Document Query)
while the broker is down answer success once committed, never 500 (the client's retry would get 409); the
messages they could not send go out when the broker is back (the sweepers re-send them) and the request
completes; /readyz says the broker is down meanwhile; the warning logged names no broker URL.
"""

from __future__ import annotations

import contextlib
import importlib
import logging

import dramatiq
import pytest
from django.apps import apps
from django.test import Client
from dramatiq.brokers.redis import RedisBroker

from bulkimport.models import BulkPhase, BulkRequest, BulkStatus
from docqueries.models import DocumentQuery
from tests.helpers.bulk import csv_bytes, person, run_bulk, run_inline, sample_bytes
from tests.helpers.processes import RedisServer
from webhooks.models import WebhookEndpoint, WebhookMessage

pytestmark = pytest.mark.django_db(transaction=True)


class Outage:
    def __init__(self, server: RedisServer, broker: RedisBroker) -> None:
        self.server = server
        self.broker = broker

    def begin(self) -> None:
        self.server.kill()

    def end(self) -> None:
        self.server.start()

    def queued(self) -> list[dramatiq.Message]:
        """Every message waiting in this broker's queues (ready or delayed)."""
        client = self.broker.client
        found = []
        for queue in self.broker.get_declared_queues() | self.broker.get_declared_delay_queues():
            for body in client.hvals(f"{self.broker.namespace}:{queue}.msgs"):
                found.append(dramatiq.Message.decode(body))
        return found


def _every_actor() -> list[dramatiq.Actor]:
    """The actors of every app's tasks module (each holds the broker it was declared on: not always the one
    dramatiq.get_broker() answers now)."""
    found: dict[str, dramatiq.Actor] = {}
    for config in apps.get_app_configs():
        try:
            module = importlib.import_module(f"{config.name}.tasks")
        except ModuleNotFoundError:
            continue
        found.update({a.actor_name: a for a in vars(module).values() if isinstance(a, dramatiq.Actor)})
    assert {"bulk_parse", "webhook_deliver", "document_queries_run"} <= set(found)
    return list(found.values())


@pytest.fixture
def outage(tmp_path, monkeypatch, settings):
    settings.S3_BUCKET = ""  # the local upload URL: the PUT is an API call of ours
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": tmp_path}},
    }
    server = RedisServer(tmp_path).start()
    broker = RedisBroker(url=server.url, namespace="outage-test", socket_timeout=1, socket_connect_timeout=1)
    for actor in _every_actor():
        monkeypatch.setattr(actor, "broker", broker)
        broker.declare_actor(actor)
    monkeypatch.setattr(dramatiq, "get_broker", lambda: broker)
    try:
        yield Outage(server, broker)
    finally:
        server.kill()


@contextlib.contextmanager
def _warnings_of(name: str):
    """The messages `name` logs (its handlers are the app's own: caplog's root handler may not see them)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logging.getLogger(name).addHandler(handler)
    try:
        yield messages
    finally:
        logging.getLogger(name).removeHandler(handler)


def _sent(outage: Outage) -> list[tuple[str, list]]:
    return [(message.actor_name, list(message.args)) for message in outage.queued()]


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_upload_put_answers_200_and_the_parse_goes_out_when_the_broker_is_back(outage, tenant, api, settings):
    WebhookEndpoint.objects.create(customer=tenant.customer, url="http://127.0.0.1:9/hook", key="k")
    created = api.post("/medical/v1/patient/bulk").json()
    outage.begin()
    assert Client().get("/readyz").json()["unavailable"] == ["broker"]
    with _warnings_of("metriport_bulk.lib.sending") as warnings:
        response = Client().put(
            _path(created["uploadUrl"]), csv_bytes([person("Ann"), person("Bob")]), content_type="text/csv"
        )
    assert response.status_code == 200
    request = BulkRequest.objects.get(id=created["requestId"])
    assert (request.status, request.phase) == (BulkStatus.PROCESSING, BulkPhase.PARSING)
    assert any("broker unreachable: parse of" in text for text in warnings), warnings
    assert not any("redis://" in text for text in warnings)
    # The same PUT again is the used URL's 409: the first one was accepted.
    assert Client().put(_path(created["uploadUrl"]), b"x", content_type="text/csv").status_code == 409

    outage.end()
    assert outage.queued() == []  # nothing went out while the broker was down
    settings.BULK_STALE_SECONDS = 0  # the sweeper's bound, shortened
    from bulkimport.services import bulk_sweep
    from webhooks.services import webhook_deliver_due

    bulk_sweep()
    webhook_deliver_due()
    sent = _sent(outage)
    assert ("bulk_parse", [created["requestId"]]) in sent
    # The processing message waits in the outbox; its customer's deliverer went out once the broker was back.
    assert WebhookMessage.objects.filter(request_id=created["requestId"]).exists()
    assert str(tenant.customer.id) in [args[0] for name, args in sent if name.startswith("webhook_deliver")]
    run_inline(request.id)
    request.refresh_from_db()
    assert request.status == BulkStatus.COMPLETED and request.successful == 2


def test_confirm_answers_success_while_the_broker_is_down(outage, tenant, api, settings):
    dry_run = run_bulk(tenant, sample_bytes(5, invalid_ratio=0.0, seed=4), dry_run=True)
    assert dry_run.status == BulkStatus.COMPLETED
    outage.begin()
    response = api.post(f"/medical/v1/patient/bulk/{dry_run.id}/confirm")
    assert response.status_code < 300, response.content
    confirmed = BulkRequest.objects.get(confirms=dry_run)
    assert confirmed.status == BulkStatus.PROCESSING
    assert str(confirmed.id) in response.content.decode()
    outage.end()
    settings.BULK_STALE_SECONDS = 0
    from bulkimport.services import bulk_sweep

    bulk_sweep()
    assert ("bulk_parse", [str(confirmed.id)]) in _sent(outage)


def test_patient_create_answers_success_while_the_broker_is_down(outage, tenant, api, settings):
    settings.DOCQUERY_SANDBOX_DELAY_SECONDS = 0  # the query's first step is due at once
    outage.begin()
    body = {
        "firstName": "Ann",
        "lastName": "Doe",
        "dob": "1980-01-02",
        "genderAtBirth": "F",
        "address": [{"addressLine1": "1 Main St", "city": "New York", "state": "NY", "zip": "10001", "country": "USA"}],
    }
    response = api.post(f"/medical/v1/patient?facilityId={tenant.facility.id}", body, format="json")
    assert response.status_code < 300, response.content
    queries = DocumentQuery.objects.filter(patient_id=response.json()["id"])
    assert queries.count() == 1
    outage.end()
    settings.DOCQUERY_SWEEP_GRACE_SECONDS = 0
    from docqueries.services import document_query_sweep

    document_query_sweep()
    sent = [args[0] for name, args in _sent(outage) if name.startswith("document_queries_run")]
    assert [[str(queries.get().id)]] == sent, (queries.values("next_attempt_at", "status"), _sent(outage))
