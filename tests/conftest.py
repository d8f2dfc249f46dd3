"""Shared fixtures. The suite runs on real PostgreSQL, Redis and SeaweedFS, or on the embedded default with
TEST_SERVICES=embedded (see devtools/testservices.py)."""

from __future__ import annotations

import os
import queue
from collections import Counter

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from rest_framework.test import APIClient

from tests.helpers import flush
from tests.helpers.api import client_for
from tests.helpers.factories import Tenant, make_tenant
from tests.helpers.receiver import Receiver
from tests.helpers.runtime import ROUND_JOB, live_worker

flush.install()  # a transactional test's teardown empties only the tables it wrote to (tests/helpers/flush.py)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if os.environ.get("TEST_SERVICES") == "embedded" and item.get_closest_marker("real_services"):
        pytest.fail("needs real services: TEST_SERVICES=embedded runs deselect it (-m 'not real_services')")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test gets a node id of its own. Schemathesis gives each operation's test its operation in the name
    but not in the node id, and pytest-xdist schedules by node id: `make test` ran one operation's test and
    dropped the other 40 without a word. A duplicate left after this stops the run."""
    for item in items:
        parent, _, own = item.nodeid.rpartition("::")
        if own != item.name and item.name.startswith(f"{own}["):
            item._id = type(item._id).parse(f"{parent}::{item.name}")  # pytest 9's structured node id
    duplicates = [nodeid for nodeid, count in Counter(item.nodeid for item in items).items() if count > 1]
    if duplicates:
        raise pytest.UsageError(f"tests share a node id (pytest-xdist would run one of each): {sorted(duplicates)}")


@pytest.fixture
def tenant(db) -> Tenant:
    return make_tenant("Acme Health")


@pytest.fixture
def other_tenant(db) -> Tenant:
    return make_tenant("Other Clinic Group")


@pytest.fixture
def api(tenant) -> APIClient:
    return client_for(tenant.api_key)


def _empty(broker: dramatiq.Broker) -> None:
    broker.flush_all()
    if isinstance(broker, StubBroker):
        # The embedded default's in-process broker: a worker stopped with prefetched or delayed messages never
        # marks them done (the StubBroker has no requeue), so join() would wait for them in every later test.
        for name in broker.queues:
            broker.queues[name] = queue.Queue()


@pytest.fixture
def broker():
    broker = dramatiq.get_broker()
    _empty(broker)
    yield broker
    _empty(broker)


@pytest.fixture
def worker(broker, transactional_db):
    """A real Dramatiq worker (threads in this process) consuming from the real broker. A test using it lets
    it run the steps: the inline helpers (run_inline, deliver_due...) refuse to race it."""
    with live_worker(threads=2) as worker:
        yield worker


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def scheduler(transactional_db, settings):
    """The periodic jobs (S3 upload polling, expiry, resume, webhook delivery) in a background thread."""
    from metriport_bulk.runtime import SchedulerThread

    settings.SCHEDULER_JOBS = [*settings.SCHEDULER_JOBS, ROUND_JOB]  # for wait_scheduler_rounds()
    thread = SchedulerThread(interval=0.3)
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def pipeline(worker, scheduler):
    """Everything a bulk request needs to run end to end: a real worker and the scheduler."""
    return worker
