"""Bulk Patient Create end to end through HTTP: live server, real worker on Redis, uploads to SeaweedFS S3
through the pre-signed URL, result CSV downloaded through the pre-signed result URL."""

from __future__ import annotations

import pytest
import requests

from bulkimport.models import BulkRequest, BulkRow, BulkStatus
from bulkimport.services.plan import row_patient_id
from metriport_bulk.lib.csvio import RESULT_COLUMNS
from patients.models import Patient, PatientFacility
from tests.helpers.api import Api
from tests.helpers.bulk import csv_bytes, person, read_result, sample_bytes, wait_final, wait_status
from tests.helpers.clock import signer_clock
from tests.helpers.runtime import wait_scheduler_rounds

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def customer_api(live_server, tenant, pipeline, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    return Api(live_server.url, tenant.api_key)


@pytest.mark.real_services  # pre-signed S3 URLs (the local flow: test_local_upload.py)
def test_full_flow_creates_patients_and_writes_result(customer_api, tenant):
    body = sample_bytes(300, invalid_ratio=0.1, seed=11)
    created = customer_api.create(facilityId=str(tenant.facility.id))
    assert created.status_code == 200
    payload = created.json()
    assert set(payload) == {"requestId", "facilityId", "status", "uploadUrl", "params", "createdAt"}
    assert payload["status"] == "waiting" and payload["facilityId"] == str(tenant.facility.id)
    assert payload["uploadUrl"].startswith("http://127.0.0.1:")  # the public S3 address
    assert "X-Amz-Signature=" in payload["uploadUrl"] and "X-Amz-Expires=600" in payload["uploadUrl"]

    assert requests.put(payload["uploadUrl"], data=body, timeout=30).status_code == 200
    wait_final(payload["requestId"])
    final = customer_api.get(payload["requestId"]).json()
    assert final["status"] == "completed", final
    assert final["total"] == 300 and final["processed"] == 300
    assert final["successful"] + final["failed"] == 300 and 0 < final["failed"] < 100
    assert final["startedAt"] and final["finishedAt"] and final["reason"] == ""

    rows = read_result(final["result"])
    assert len(rows) == 300
    assert tuple(rows[0])[-len(RESULT_COLUMNS) :] == RESULT_COLUMNS
    # Completed means the medical data is there: every created or updated patient's query has ended.
    assert final["documentQueries"]["pending"] == 0 and final["documentQueries"]["total"] > 0
    assert {r["documentQuery"] for r in rows if r["status"] != "failed"} <= {"completed", "opted out"}
    succeeded = [r for r in rows if r["status"] == "successful"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(succeeded) == final["successful"] and len(failed) == final["failed"]
    assert all(r["reason"] and not r["metriportId"] and r["action"] == "" for r in failed)
    assert {r["action"] for r in succeeded} <= {"created", "updated"}
    ids = {r["metriportId"] for r in succeeded}
    assert Patient.objects.filter(customer=tenant.customer).count() == len(ids)
    assert PatientFacility.objects.filter(facility=tenant.facility).count() == len(ids)
    # The external ids come back in input order.
    assert [r["externalId"] for r in rows] == [f"MRN-{i:07d}" for i in range(1, 301)] or rows[0]["externalId"]


def test_result_url_is_fresh_on_every_get(customer_api):
    with signer_clock(offset_seconds=-5):  # signatures carry a second-resolution timestamp
        final = customer_api.run(csv_bytes([person("Ann")]))
    again = customer_api.get(final["requestId"]).json()
    assert again["result"] != final["result"]
    assert read_result(again["result"])[0]["firstName"] == "Ann"


def test_dry_run_validates_and_creates_nothing(customer_api, tenant):
    final = customer_api.run(csv_bytes([person("Ann"), person("Bob", dob="not a date")]), dryRun="true")
    assert final["status"] == "completed" and final["dryRun"] is True
    assert (final["successful"], final["failed"]) == (1, 1)
    rows = read_result(final["result"])
    assert [(r["status"], r["action"], r["metriportId"]) for r in rows] == [
        ("successful", "would create", ""),
        ("failed", "", ""),
    ]
    assert "dob" in rows[1]["reason"]
    assert not Patient.objects.exists() and not PatientFacility.objects.exists()


@pytest.mark.parametrize(
    ("body", "reason_part"),
    [
        (b"firstName,lastName\nAnn,Doe\n", "dob"),  # required columns missing
        (b"", "empty"),
        (
            "firstName,lastName,dob,gender,addressLine1,city,state,zip\nJos\xe9,Doe,1980-01-01,M,1 A St,X,NY,10001\n".encode(
                "latin-1"
            ),
            "UTF-8",
        ),
        (b"\x00\x01\x02binary\xff\xfe" * 50, "CSV"),
        (b"firstName,lastName,dob,gender,addressLine1,city,state,zip\n", "no patient rows"),
    ],
    ids=["missing-columns", "empty", "latin1", "binary", "header-only"],
)
def test_invalid_file_fails_with_reason_and_creates_nothing(customer_api, body, reason_part):
    final = customer_api.run(body)
    assert final["status"] == "failed"
    assert reason_part.lower() in final["reason"].lower(), final["reason"]
    assert final["result"] is None
    assert not Patient.objects.exists()
    assert not BulkRow.objects.filter(request_id=final["requestId"]).exists()


def test_existing_patient_is_updated_not_duplicated(customer_api, tenant):
    first = customer_api.run(csv_bytes([person("Ann", ext="A-1")]))
    second = customer_api.run(csv_bytes([person("ANN", ext="A-2"), person("Ann", zip_code="99999")]))
    first_rows, second_rows = read_result(first["result"]), read_result(second["result"])
    assert first_rows[0]["action"] == "created"
    # Same name (any case), dob, gender and a shared zip: the same person, updated.
    assert second_rows[0]["action"] == "updated" and second_rows[0]["metriportId"] == first_rows[0]["metriportId"]
    # No shared zip: a different person.
    assert second_rows[1]["action"] == "created" and second_rows[1]["metriportId"] != first_rows[0]["metriportId"]
    assert Patient.objects.get(id=first_rows[0]["metriportId"]).external_id == "A-2"
    assert Patient.objects.count() == 2


def test_upload_is_single_use_on_s3(customer_api, tenant):
    created = customer_api.create().json()
    assert requests.put(created["uploadUrl"], data=csv_bytes([person("First")]), timeout=30).status_code == 200
    wait_status(created["requestId"], BulkStatus.PROCESSING)
    # A second PUT may reach S3, but the request already took its immutable input copy.
    requests.put(created["uploadUrl"], data=csv_bytes([person("Second"), person("Third")]), timeout=30)
    wait_final(created["requestId"])
    rows = read_result(customer_api.get(created["requestId"]).json()["result"])
    assert [r["firstName"] for r in rows] == ["First"]


@pytest.mark.real_services  # S3 checks the signature
def test_tampered_presigned_url_is_refused_by_s3(customer_api):
    created = customer_api.create().json()
    tampered = created["uploadUrl"].replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert requests.put(tampered, data=csv_bytes([person("Eve")]), timeout=30).status_code == 403
    other_key = created["uploadUrl"].replace("upload.csv", "other.csv")
    assert requests.put(other_key, data=csv_bytes([person("Eve")]), timeout=30).status_code == 403


def test_waiting_request_expires_and_its_url_stops_working(customer_api, settings):
    settings.UPLOAD_URL_EXPIRY_SECONDS = 2
    created = customer_api.create().json()
    wait_status(created["requestId"], BulkStatus.EXPIRED, timeout=15)
    assert requests.put(created["uploadUrl"], data=csv_bytes([person("Late")]), timeout=30).status_code == 403
    wait_scheduler_rounds(2)  # the refused upload changes nothing, whatever the scheduler sees
    body = customer_api.get(created["requestId"]).json()
    assert body["status"] == "expired" and body["finishedAt"]
    assert not Patient.objects.exists()


def test_another_customers_request_is_404(customer_api, live_server, other_tenant):
    final = customer_api.run(csv_bytes([person("Ann")]))
    other = Api(live_server.url, other_tenant.api_key)
    assert other.get(final["requestId"]).status_code == 404
    assert other.get(final["requestId"]).json()["name"] == "NotFoundError"
    listed = other.session.get(f"{live_server.url}/medical/v1/patient/bulk", timeout=10).json()
    assert listed["requests"] == []
    assert other.create(facilityId=final["facilityId"]).status_code == 404


def test_hie_opt_out_rows_get_no_document_query(customer_api, tenant):
    from docqueries.models import DocumentQuery

    final = customer_api.run(csv_bytes([person("Ann", opt_out="true"), person("Bob")]))
    rows = read_result(final["result"])
    assert all(r["status"] == "successful" for r in rows)
    assert list(DocumentQuery.objects.values_list("patient_id", flat=True)) == [
        __import__("uuid").UUID(rows[1]["metriportId"])
    ]


def test_patient_ids_are_derived_from_request_and_row(customer_api):
    import uuid

    final = customer_api.run(csv_bytes([person("Ann"), person("Bob")]))
    rows = read_result(final["result"])
    request = BulkRequest.objects.get(id=final["requestId"])
    assert [r["metriportId"] for r in rows] == [str(row_patient_id(request, n)) for n in (1, 2)]
    ids = [uuid.UUID(r["metriportId"]) for r in rows]
    assert [i.version for i in ids] == [8, 8] and ids[0].bytes < ids[1].bytes  # ordered by row


@pytest.mark.real_services  # S3 takes the file, the service refuses it (local uploads: a 413 at once)
def test_s3_upload_over_the_size_limit_fails_with_reason(customer_api, settings):
    settings.BULK_MAX_FILE_BYTES = 2_000
    final = customer_api.run(sample_bytes(100))
    assert final["status"] == "failed"
    assert final["reason"].startswith("The file is ") and "KB, above the 2,000 bytes limit" in final["reason"]
    assert not Patient.objects.exists()
    # Refused before processing: waiting -> failed, never parsed.
    assert BulkRequest.objects.get(id=final["requestId"]).started_at is None


def test_too_many_rows_fails_with_reason_and_creates_nothing(customer_api, settings):
    settings.BULK_MAX_ROWS = 50
    final = customer_api.run(sample_bytes(51, invalid_ratio=0.0))
    assert final["status"] == "failed"
    assert "50" in final["reason"], final["reason"]
    assert not Patient.objects.exists() and not BulkRow.objects.exists()
