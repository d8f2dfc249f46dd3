"""Load: 20 customers (threads) each create a bulk request and upload the same file at the same moment, all
through real HTTP (live server, SeaweedFS S3 pre-signed upload, the real worker and scheduler on Redis and
PostgreSQL). Every request completes, and no customer sees another's data: identical demographics in
different customers never merge, lists hold only the caller's ids, cross GETs are 404.

Rows per customer: LOAD_ROWS (default 500, so the suite stays fast on 2 cores). The full specification
run is `LOAD_ROWS=5000 .venv/bin/pytest tests/load` (20 x 5,000 = 100,000 rows).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

import pytest
import requests

from bulkimport.models import BulkChunk, BulkParseSegment, BulkRequest, BulkRow, BulkStatus, ChunkStatus
from docqueries.models import DocumentQuery, QueryStatus
from patients.models import Patient, PatientFacility
from tests.helpers.api import Api
from tests.helpers.bulk import read_result, sample_bytes
from tests.helpers.factories import Tenant, make_tenant

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 20
PAGE_SIZE = 200  # several pages per customer at the default LOAD_ROWS
LOAD_ROWS = int(os.environ.get("LOAD_ROWS", "500"))
# The run fails when nothing moves for this long (no request changes state or counts, no row, chunk or Document
# Query is added or ends), not after a fixed time: a busy CI machine may take several times longer than a quiet one.
STALL_SECONDS = float(os.environ.get("LOAD_STALL_SECONDS", "90"))


def _customer_flow(api: Api, body: bytes, start: threading.Barrier, stop: threading.Event) -> dict | None:
    """What one customer does: create, upload to the pre-signed URL, poll the API until the request ends (None
    when the watch gives up first)."""
    start.wait()
    created = api.create()
    assert created.status_code == 200, created.text
    upload = requests.put(created.json()["uploadUrl"], data=body, timeout=120)
    assert upload.status_code == 200, upload.text
    while not stop.is_set():
        response = api.get(created.json()["requestId"])
        assert response.status_code == 200, response.text
        final = response.json()
        if final["status"] not in ("waiting", "processing"):
            return final
        stop.wait(0.5)
    return None


def _progress() -> tuple:
    """What moves while the imports run; the same value twice means nothing moved in between."""
    return (
        tuple(BulkRequest.objects.order_by("id").values_list("status", "phase", "processed", "successful", "failed")),
        BulkRow.objects.count(),
        BulkParseSegment.objects.filter(done_at__isnull=False).count(),
        BulkChunk.objects.filter(status=ChunkStatus.DONE).count(),
        DocumentQuery.objects.count(),
        DocumentQuery.objects.exclude(status=QueryStatus.PROCESSING).count(),
    )


def _unfinished() -> list[tuple]:
    """Where each request that has not ended stands (ids, states and counts only: no row content)."""
    return [
        (
            str(request.id),
            request.status,
            request.phase,
            f"{request.processed}/{request.total} processed",
            f"{request.chunks.filter(status=ChunkStatus.DONE).count()}/{request.chunks.count()} chunks done",
        )
        for request in BulkRequest.objects.filter(status__in=[BulkStatus.WAITING, BulkStatus.PROCESSING])
    ]


def _await_while_moving(futures: list[Future], stop: threading.Event) -> None:
    """Waits for every customer to end; fails as soon as one customer fails, or when nothing has moved for
    STALL_SECONDS, naming where each unfinished request stands."""
    last, moved = _progress(), time.monotonic()
    while True:
        done, pending = wait(futures, timeout=1, return_when=FIRST_EXCEPTION)
        if any(future.exception() for future in done):
            stop.set()
            return
        if not pending:
            return
        now = _progress()
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > STALL_SECONDS:
            stop.set()
            pytest.fail(f"nothing moved for {STALL_SECONDS:.0f} s; unfinished: {_unfinished()}")


def _all_pages(api: Api, path: str, items_key: str, *, expected: int, page_size: int = PAGE_SIZE) -> list[dict]:
    """Follows nextPage to the end; fails (instead of looping) when it takes more pages than `expected` items need."""
    items, url, pages = [], f"{api.base_url}{path}?count={page_size}", 0
    while url:
        pages += 1
        assert pages <= expected // page_size + 2, (
            f"{path}: still a nextPage after {pages - 1} pages of {page_size} for {expected} items"
        )
        response = api.session.get(url, timeout=30)
        assert response.status_code == 200, response.text
        items.extend(response.json()[items_key])
        url = response.json()["meta"].get("nextPage")
    return items


@pytest.fixture
def customers(live_server, pipeline, settings) -> list[tuple[Tenant, Api]]:
    settings.PUBLIC_BASE_URL = live_server.url
    tenants = [make_tenant(f"Load customer {i:02d}") for i in range(CUSTOMERS)]
    return [(tenant, Api(live_server.url, tenant.api_key)) for tenant in tenants]


def test_twenty_customers_import_concurrently_and_see_only_their_own(customers):
    # One file for everyone: the same people in 20 customers must become 20 separate sets of patients.
    body = sample_bytes(LOAD_ROWS, invalid_ratio=0.05, seed=2024)
    start, stop = threading.Barrier(CUSTOMERS), threading.Event()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CUSTOMERS) as pool:
        futures = [pool.submit(_customer_flow, api, body, start, stop) for _, api in customers]
        _await_while_moving(futures, stop)
        finals = [future.result() for future in futures]
    elapsed = time.monotonic() - started
    print(
        f"\n{CUSTOMERS} customers x {LOAD_ROWS:,} rows: all ended in {elapsed:.1f} s ({CUSTOMERS * LOAD_ROWS / elapsed:,.0f} rows/s)"
    )

    assert [final["status"] for final in finals] == ["completed"] * CUSTOMERS, [
        (f["status"], f["reason"]) for f in finals
    ]
    outcomes = {(final["total"], final["successful"], final["failed"]) for final in finals}
    assert len(outcomes) == 1, f"the same file gave different outcomes: {outcomes}"
    total, successful, failed = outcomes.pop()
    assert total == LOAD_ROWS and successful + failed == LOAD_ROWS and 0 < failed < LOAD_ROWS * 0.2

    own_ids: list[set[str]] = []
    for (tenant, api), final in zip(customers, finals, strict=True):
        result = read_result(final["result"])
        assert len(result) == LOAD_ROWS
        ids = {row["metriportId"] for row in result if row["status"] == "successful"}
        assert ids and "" not in ids
        # Every patient was created in this customer, none matched (updated) another customer's.
        assert {row["action"] for row in result if row["status"] == "successful"} <= {"created", "updated", "duplicate"}
        assert set(map(str, Patient.objects.filter(customer=tenant.customer).values_list("id", flat=True))) == ids
        assert PatientFacility.objects.filter(facility=tenant.facility).count() == len(ids)

        listed_patients = _all_pages(api, "/medical/v1/patient", "patients", expected=len(ids))
        assert {patient["id"] for patient in listed_patients} == ids
        assert len(listed_patients) == len(ids)  # no duplicates across pages either
        assert all(patient["facilityIds"] == [str(tenant.facility.id)] for patient in listed_patients)
        listed_requests = _all_pages(api, "/medical/v1/patient/bulk", "requests", expected=1)
        assert [item["requestId"] for item in listed_requests] == [final["requestId"]]
        own_ids.append(ids)

    # Twenty disjoint sets of the same number of patients: nothing merged across customers.
    assert len(set().union(*own_ids)) == sum(len(ids) for ids in own_ids)
    assert len({len(ids) for ids in own_ids}) == 1
    assert BulkRequest.objects.count() == CUSTOMERS

    # Each customer probing its neighbour's ids gets 404 everywhere.
    for i, (_, api) in enumerate(customers):
        neighbour_tenant, _ = customers[(i + 1) % CUSTOMERS]
        neighbour_final = finals[(i + 1) % CUSTOMERS]
        neighbour_patient = next(iter(own_ids[(i + 1) % CUSTOMERS]))
        probes = {
            "bulk GET": api.get(neighbour_final["requestId"]),
            "patient GET": api.session.get(f"{api.base_url}/medical/v1/patient/{neighbour_patient}", timeout=30),
            "facility GET": api.session.get(
                f"{api.base_url}/medical/v1/facility/{neighbour_tenant.facility.id}", timeout=30
            ),
            "document query": api.session.get(
                f"{api.base_url}/medical/v1/document/query", params={"patientId": neighbour_patient}, timeout=30
            ),
        }
        assert {name: response.status_code for name, response in probes.items()} == dict.fromkeys(probes, 404)


def test_a_large_import_lists_every_patient_exactly_once(live_server, tenant, pipeline, settings):
    """Regression: a chunk's patients share one created_at; with a cursor on -created_at alone, DRF's tie-break
    offset (capped at 1,000) made nextPage return the same page forever past ~1,000 such patients."""
    settings.PUBLIC_BASE_URL = live_server.url
    api = Api(live_server.url, tenant.api_key)
    final = api.run(sample_bytes(1_200, invalid_ratio=0.0, seed=5), timeout=120)
    assert final["status"] == "completed" and final["successful"] == 1_200, final
    created = set(map(str, Patient.objects.filter(customer=tenant.customer).values_list("id", flat=True)))
    listed = _all_pages(api, "/medical/v1/patient", "patients", expected=len(created), page_size=50)
    assert len(listed) == len({patient["id"] for patient in listed}), "a patient was listed twice"
    assert {patient["id"] for patient in listed} == created
