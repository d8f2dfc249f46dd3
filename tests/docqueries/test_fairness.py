"""Fair on the Document Query lanes with the `http` backend (issue 24, item 4): customer A's backlog of
thousands of queued queries never holds customer B's first query back by more than a few of A's batches, on
the real broker, a real worker and a real local gateway. Positions are compared (how many of A's calls the
gateway saw after B's work was queued and before B's first call), not wall-clock seconds, so the tests hold
under load: the bounds come from how many of A's messages a worker can hold, not from timing."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

from docqueries.models import DocumentQuery, QueryStatus
from docqueries.services import document_queries_start
from docqueries.services.dispatch import DISPATCH_BATCH_SIZE, EXPRESS_CHAINS
from tests.helpers.api import client_for
from tests.helpers.bulk import csv_bytes, person, submit
from tests.helpers.docqueries import make_patients
from tests.helpers.receiver import Receiver
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.real_services, pytest.mark.usefixtures("worker")]

BACKLOG = 2_000
THREADS = 2  # the `worker` fixture's
PREFETCH = 2 * THREADS  # messages Dramatiq's consumer holds per queue beside the ones running
# Slack for the worker's consumer noticing a new express message (it polls the broker every 100 ms) while
# the threads go on with A's calls.
SLACK = DISPATCH_BATCH_SIZE
# How long a wait may take on a loaded machine (make test runs four processes on two cores). The figures
# these tests assert are orders (how many of A's calls came first), never times.
WAIT = 120.0


@pytest.fixture
def gateway(settings, receiver: Receiver) -> Receiver:
    """A gateway answering each query in 30 ms; no rate limit, so A's backlog runs as fast as it can."""
    settings.DOCQUERY_BACKEND = "http"
    settings.DOCQUERY_GATEWAY_URL = f"{receiver.url}/gateway/query"
    settings.DOCQUERY_RATE_LIMIT_PER_MINUTE = 0
    settings.FAIR_SCHEDULING = True
    receiver.default = lambda item: Receiver.json_reply({"status": "completed", "documents": []}, delay=0.03)
    return receiver


def start(tenant, count: int, *, express: bool, prefix: str) -> None:
    patients = make_patients(tenant.customer, count, prefix=prefix)
    with transaction.atomic():
        document_queries_start(
            customer_id=tenant.customer.id,
            patient_ids=[p.id for p in patients],
            bulk_request_id=uuid.uuid4(),
            express=express,
        )


def calls(gateway: Receiver) -> list[tuple[str, str]]:
    """(customer id, patient external id) of every gateway call, in the order they arrived."""
    return [(call.json()["customerId"], call.json()["patient"]["externalId"] or "") for call in gateway.snapshot()]


def calls_of(gateway: Receiver, tenant) -> int:
    return sum(1 for customer, _ in calls(gateway) if customer == str(tenant.customer.id))


def a_calls_before(gateway: Receiver, a, is_b) -> int:
    """How many of A's calls the gateway saw before the first call `is_b` picks out."""
    seen = calls(gateway)
    first = next(index for index, call in enumerate(seen) if is_b(call))
    return sum(1 for customer, _ in seen[:first] if customer == str(a.customer.id))


def a_under_way(gateway: Receiver, a) -> int:
    wait_until(lambda: calls_of(gateway, a) >= 20, timeout=WAIT, message="A's backlog under way")
    return calls_of(gateway, a)


def test_b_import_and_single_patient_pass_a_2000_query_backlog_on_the_ordinary_lane(tenant, other_tenant, gateway):
    """A's 2,000 queries of later chunks fill `docqueries`; B's small import (its first chunk: express) and
    B's single-patient create (express) reach the gateway after a few of A's batches, not after A's 2,000."""
    a, b = tenant, other_tenant
    start(a, BACKLOG, express=False, prefix="a")
    at_start = a_under_way(gateway, a)
    api = client_for(b.api_key)
    patient = {
        "firstName": "Ann",
        "lastName": "Single",
        "dob": "1980-01-02",
        "genderAtBirth": "F",
        "address": [{"addressLine1": "1 Main St", "city": "New York", "state": "NY", "zip": "10001"}],
        "externalId": "B-API",
    }
    answer = api.post(f"/medical/v1/patient?facilityId={b.facility.id}", patient, format="json")
    assert answer.status_code == 201, answer.json()
    rows = [person(f"Bulk{i}", zip_code=f"{10000 + i}", ext=f"B-BULK-{i}") for i in range(3)]
    submit(b, csv_bytes(rows))  # parsed and applied by the worker: one chunk, the first, so express
    gateway.wait_for(
        lambda received: sum(call.json()["customerId"] == str(b.customer.id) for call in received) >= 4, timeout=WAIT
    )

    single = a_calls_before(gateway, a, lambda call: call[1] == "B-API") - at_start
    bulk = a_calls_before(gateway, a, lambda call: call[1].startswith("B-BULK-")) - at_start
    # The single patient's express message waits for a thread to end its batch of A's: one batch per thread.
    assert single <= THREADS * DISPATCH_BATCH_SIZE + SLACK, single
    # The import's parse (priority 0) waits likewise; its chunk message (priority 1) goes before the A messages
    # the worker holds prefetched (priority 2) but after the ones running; its queries take the express lane.
    assert bulk <= (2 * THREADS + PREFETCH) * DISPATCH_BATCH_SIZE + SLACK, bulk
    assert calls_of(gateway, a) < BACKLOG / 2  # A's backlog is far from drained


def test_b_first_query_passes_a_first_chunk_of_2000_queries_on_the_express_lane(tenant, other_tenant, gateway):
    """A's import has just begun: its first chunk's 2,000 queries are on the express lane too. They hold one
    message there at a time (each batch sends the next on), so B's first query waits for the batches in
    flight and at most one queued of A's, not for all 40 of A's batches."""
    a, b = tenant, other_tenant
    start(a, BACKLOG, express=True, prefix="a")
    at_start = a_under_way(gateway, a)
    start(b, 3, express=True, prefix="b")
    wait_until(lambda: calls_of(gateway, b) == 3, timeout=WAIT, message="B's queries")

    behind = a_calls_before(gateway, a, lambda call: call[0] == str(b.customer.id)) - at_start
    assert behind <= (THREADS + EXPRESS_CHAINS) * DISPATCH_BATCH_SIZE + SLACK, behind
    assert calls_of(gateway, a) < BACKLOG / 2


def test_a_chained_express_dispatch_runs_every_query_once(tenant, gateway):
    """A dispatch of many batches on the express lane, one message at a time: every query still runs,
    each with one gateway call."""
    start(tenant, 5 * DISPATCH_BATCH_SIZE + 7, express=True, prefix="a")
    wait_until(
        lambda: not DocumentQuery.objects.filter(status=QueryStatus.PROCESSING).exists(),
        timeout=60,
        message="every query ended",
    )
    ids = [external_id for _, external_id in calls(gateway)]
    assert len(ids) == len(set(ids)) == 5 * DISPATCH_BATCH_SIZE + 7
    assert DocumentQuery.objects.filter(status=QueryStatus.COMPLETED).count() == 5 * DISPATCH_BATCH_SIZE + 7
