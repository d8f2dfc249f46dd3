"""The Redis broker's idle consumers (metriport_bulk.lib.broker): those of the queues an import's steps wait
on poll every DRAMATIQ_WORKER_TIMEOUT at most; those of delay queues, of the Document Queries' ordinary lane
and of the webhooks' queues every DRAMATIQ_BACKGROUND_TIMEOUT, so a worker's polling takes less of the
machine from the import it runs."""

from __future__ import annotations

import time
import uuid

import dramatiq
import pytest
from django.conf import settings
from django.test import override_settings

from docqueries.tasks import QUEUE as DOCQUERIES_LANE
from metriport_bulk.lib.broker import RedisBroker, poll_timeout
from webhooks.tasks import QUEUES as WEBHOOK_QUEUES

PROMPT = ("bulk", "bulk-chunks", "docqueries-express")
BACKGROUND = (DOCQUERIES_LANE, *WEBHOOK_QUEUES)


def test_the_background_queues_are_the_ordinary_lane_and_the_webhooks_queues():
    assert set(settings.DRAMATIQ_BACKGROUND_QUEUES) == set(BACKGROUND)
    assert DOCQUERIES_LANE == "docqueries"


@override_settings(DRAMATIQ_BACKGROUND_TIMEOUT=1000)
def test_each_queue_polls_as_its_messages_need():
    for queue in PROMPT:
        assert poll_timeout(queue, 100) == 100  # a step of an import waits for it
        assert poll_timeout(f"{queue}.DQ", 100) == 1000  # delayed messages: fetched ahead, held until due
    for queue in BACKGROUND:
        assert poll_timeout(queue, 100) == 1000
        assert poll_timeout(f"{queue}.DQ", 100) == 1000
    assert poll_timeout("webhooks.DQ", 5000) == 5000  # never shorter than the worker's own timeout


@pytest.mark.real_services
def test_a_workers_consumers_take_their_queues_timeouts():
    broker = RedisBroker(url=settings.BROKER_URL, namespace=f"polls-{uuid.uuid4().hex[:8]}")
    for queue in (*PROMPT, *BACKGROUND):
        broker.declare_queue(queue)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while any(thread.consumer is None for thread in worker.consumers.values()):
            assert time.monotonic() < deadline, "the worker's consumers did not start"
            time.sleep(0.01)
        timeouts = {name: thread.consumer.timeout for name, thread in worker.consumers.items()}
    finally:
        worker.stop()
        broker.close()
    background = settings.DRAMATIQ_BACKGROUND_TIMEOUT
    assert timeouts == {
        **{queue: 100 for queue in PROMPT},
        **{f"{queue}.DQ": background for queue in PROMPT},
        **{queue: background for queue in BACKGROUND},
        **{f"{queue}.DQ": background for queue in BACKGROUND},
    }
