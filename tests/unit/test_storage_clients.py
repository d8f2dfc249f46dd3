"""The S3 client: built once per process and endpoint, under a lock (several worker threads may begin with a
file at once), and built as a worker process boots (runtime.WarmUp), not in its first request's parse. No
network: building a client contacts no server."""

from __future__ import annotations

import threading

import dramatiq
from django.conf import settings
from django.test import override_settings
from dramatiq.brokers.stub import StubBroker

from metriport_bulk.lib import storage
from metriport_bulk.runtime import WarmUp

S3 = {"S3_BUCKET": "warm-up-tests", "S3_ENDPOINT_URL": "http://127.0.0.1:9"}


def built_clients() -> int:
    return storage._built_client.cache_info().currsize


@override_settings(**S3)
def test_a_worker_process_boots_with_its_s3_client_built():
    assert built_clients() == 0  # overriding the S3 settings dropped the clients built before
    broker = StubBroker(middleware=[WarmUp()])
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        assert built_clients() == 1
        built = storage._built_client(settings.S3_ENDPOINT_URL)
        assert storage.s3_client() is built  # the first file uses the client the boot built
    finally:
        worker.stop()


def test_the_warm_up_is_in_every_brokers_middleware():
    assert any(isinstance(middleware, WarmUp) for middleware in dramatiq.get_broker().middleware)


@override_settings(S3_BUCKET="")
def test_without_s3_nothing_is_built():
    storage.warm_up()
    assert built_clients() == 0


@override_settings(**S3)
def test_threads_beginning_at_once_share_one_client():
    threads = 8
    start = threading.Barrier(threads)
    clients: list[object] = []

    def first_file() -> None:
        start.wait()
        clients.append(storage.s3_client())

    runs = [threading.Thread(target=first_file) for _ in range(threads)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert len(clients) == threads
    assert len({id(client) for client in clients}) == 1
    assert built_clients() == 1
