"""`Idempotency-Key` on POST …/bulk, …/{id}/confirm and POST /medical/v1/patient. Failure modes named: a
retry (same request or patient, fresh upload URL while it waits), other parameters (422), another operation
(422), another customer's same key (its own call), a malformed key (400: empty, too long, space, control,
non-ASCII), an error answer (not remembered), an expired key (free again), concurrent retries (one request:
threads on the unique constraint)."""

from __future__ import annotations

import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.utils import timezone

from bulkimport.models import BulkRequest, BulkStatus
from bulkimport.services import UPLOAD_SALT
from idempotency.models import IdempotencyKey
from idempotency.services import idempotency_keys_purge
from patients.models import Patient
from tests.helpers.api import client_for
from tests.helpers.bulk import csv_bytes, person, run_inline, submit
from tests.helpers.factories import make_tenant
from tests.helpers.threads import db_thread

BULK = "/medical/v1/patient/bulk"
PATIENT = "/medical/v1/patient"
ADDRESS = {"addressLine1": "1 Main St", "city": "New York", "state": "NY", "zip": "10001", "country": "USA"}
PERSON = {"firstName": "Ann", "lastName": "Doe", "dob": "1980-01-02", "genderAtBirth": "F", "address": [ADDRESS]}


def upload_target(url: str) -> str:
    """The bulk request an upload URL uploads to (a local signed token, or the S3 key's request folder)."""
    if "/uploads/bulk/" in url:
        return signing.loads(url.rsplit("/", 1)[1], salt=UPLOAD_SALT)["r"]
    return urlsplit(url).path.rstrip("/").split("/")[-2]


def keyed(key: str) -> dict:
    return {"HTTP_IDEMPOTENCY_KEY": key}


@pytest.mark.django_db
def test_without_a_key_every_call_creates(api, tenant):
    first, second = api.post(BULK), api.post(BULK)
    assert first.json()["requestId"] != second.json()["requestId"]
    assert "Idempotent-Replayed" not in first.headers
    assert BulkRequest.objects.count() == 2 and not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_bulk_create_retry_answers_the_same_request_with_a_working_upload_url(api, tenant):
    first = api.post(BULK + "?dryRun=true", **keyed("key-1"))
    retry = api.post(BULK + "?dryRun=true", **keyed("key-1"))
    assert first.status_code == retry.status_code == 200
    assert "Idempotent-Replayed" not in first.headers and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["requestId"] == first.json()["requestId"]
    assert list(retry.json()) == ["requestId", "facilityId", "status", "uploadUrl", "params", "createdAt"]
    assert retry.json()["params"] == {"dryRun": True} and retry.json()["status"] == "waiting"
    assert BulkRequest.objects.count() == 1
    assert upload_target(retry.json()["uploadUrl"]) == first.json()["requestId"]


@pytest.mark.django_db
def test_bulk_create_replay_after_the_upload_has_no_upload_url(api, tenant):
    first = api.post(BULK, **keyed("key-1")).json()
    BulkRequest.objects.filter(id=first["requestId"]).update(status=BulkStatus.PROCESSING)
    retry = api.post(BULK, **keyed("key-1"))
    assert retry.status_code == 200 and retry.json()["requestId"] == first["requestId"]
    assert retry.json()["status"] == "processing" and "uploadUrl" not in retry.json()


@pytest.mark.django_db
def test_same_key_other_parameters_is_422_and_creates_nothing(api, tenant):
    api.post(BULK, **keyed("key-1"))
    other = api.post(BULK + "?dryRun=true", **keyed("key-1"))
    assert other.status_code == 422
    assert other.json()["name"] == "UnprocessableEntityError"
    assert "other parameters" in other.json()["detail"] and "new key" in other.json()["detail"]
    assert BulkRequest.objects.count() == 1


@pytest.mark.django_db
def test_same_key_for_another_operation_is_422(api, tenant):
    api.post(BULK, **keyed("key-1"))
    answer = api.post(f"{PATIENT}?facilityId={tenant.facility.id}", PERSON, format="json", **keyed("key-1"))
    assert answer.status_code == 422 and "another operation (bulk_create)" in answer.json()["detail"]
    assert not Patient.objects.exists()


@pytest.mark.django_db
def test_keys_are_per_customer(api, tenant, other_tenant):
    mine = api.post(BULK, **keyed("shared-key")).json()
    theirs = client_for(other_tenant.api_key).post(BULK, **keyed("shared-key"))
    assert theirs.status_code == 200 and "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["requestId"] != mine["requestId"]
    assert theirs.json()["facilityId"] == str(other_tenant.facility.id)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("", "empty"),
        ("k" * 256, "256 characters long: at most 255"),
        ("two words", "visible ASCII"),
        ("tab\there", "visible ASCII"),
        ("clé-1", "visible ASCII"),
    ],
)
@pytest.mark.parametrize("path", ["bulk", "patient", "confirm"])
def test_malformed_key_is_400_and_nothing_happens(api, tenant, key, words, path):
    url = {"bulk": BULK, "patient": f"{PATIENT}?facilityId={tenant.facility.id}", "confirm": f"{BULK}/x/confirm"}
    answer = api.post(url[path], PERSON if path == "patient" else None, format="json", **keyed(key))
    assert answer.status_code == 400, answer.json()
    assert answer.json()["detail"].startswith("Idempotency-Key:") and words in answer.json()["detail"]
    assert key not in answer.json()["detail"] or not key
    assert not BulkRequest.objects.exists() and not Patient.objects.exists()
    assert not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_longest_key_is_accepted(api, tenant):
    key = "k" * 255
    assert api.post(BULK, **keyed(key)).status_code == 200
    assert api.post(BULK, **keyed(key)).headers["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_an_error_answer_is_not_remembered(api, tenant):
    bad = api.post(
        f"{PATIENT}?facilityId={tenant.facility.id}", {**PERSON, "dob": "tomorrow"}, format="json", **keyed("key-1")
    )
    assert bad.status_code == 400
    good = api.post(f"{PATIENT}?facilityId={tenant.facility.id}", PERSON, format="json", **keyed("key-1"))
    assert good.status_code == 201 and "Idempotent-Replayed" not in good.headers


@pytest.mark.django_db
def test_a_key_older_than_the_window_is_free_again(api, tenant, settings):
    first = api.post(BULK, **keyed("key-1")).json()
    IdempotencyKey.objects.update(
        created_at=timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_WINDOW_SECONDS + 1)
    )
    later = api.post(BULK + "?dryRun=true", **keyed("key-1"))  # other parameters: no 422 once expired
    assert later.status_code == 200 and later.json()["requestId"] != first["requestId"]
    assert IdempotencyKey.objects.get().resource_id == later.json()["requestId"]


@pytest.mark.django_db
def test_purge_forgets_expired_keys_only(api, tenant, settings):
    api.post(BULK, **keyed("old"))
    api.post(BULK, **keyed("new"))
    IdempotencyKey.objects.filter(key="old").update(created_at=timezone.now() - timedelta(days=2))
    assert idempotency_keys_purge() == 1
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.django_db
def test_patient_create_retry_answers_the_same_patient(api, tenant):
    url = f"{PATIENT}?facilityId={tenant.facility.id}"
    first = api.post(url, PERSON, format="json", **keyed("p-1"))
    retry = api.post(url, PERSON, format="json", **keyed("p-1"))
    assert first.status_code == retry.status_code == 201  # the first answer's status, replayed
    assert retry.json()["id"] == first.json()["id"] and retry.headers["Idempotent-Replayed"] == "true"
    other = api.post(url, {**PERSON, "firstName": "Bea"}, format="json", **keyed("p-1"))
    assert other.status_code == 422
    assert "Bea" not in other.json()["detail"]  # no PHI echoed
    assert Patient.objects.count() == 1


@pytest.mark.django_db
def test_fingerprint_holds_no_phi(api, tenant):
    api.post(f"{PATIENT}?facilityId={tenant.facility.id}", PERSON, format="json", **keyed("p-1"))
    row = IdempotencyKey.objects.get()
    assert "Ann" not in row.fingerprint and len(row.fingerprint) == 64
    assert row.operation == "patient_create" and row.status_code == 201


@pytest.mark.django_db(transaction=True)
def test_confirm_retry_answers_the_same_import(broker):
    tenant = make_tenant()
    api = client_for(tenant.api_key)
    dry = submit(tenant, csv_bytes([person("Ann")]), dry_run=True)
    run_inline(dry.id)
    first = api.post(f"{BULK}/{dry.id}/confirm", **keyed("c-1"))
    retry = api.post(f"{BULK}/{dry.id}/confirm", **keyed("c-1"))
    assert first.status_code == retry.status_code == 200, retry.json()
    assert retry.json()["requestId"] == first.json()["requestId"] != str(dry.id)
    assert set(retry.json()) == {"requestId", "facilityId", "status", "params", "createdAt"}
    # Without the key, a second confirm is still the 409 of a dry run confirmed already.
    assert api.post(f"{BULK}/{dry.id}/confirm").status_code == 409
    assert BulkRequest.objects.filter(confirms=dry).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("operation", ["bulk", "patient"])
def test_concurrent_retries_make_one_request(operation):
    tenant = make_tenant()
    url = BULK if operation == "bulk" else f"{PATIENT}?facilityId={tenant.facility.id}"
    racers = 6
    barrier = threading.Barrier(racers)
    answers: list[tuple[int, str, str | None]] = []
    lock = threading.Lock()

    def call() -> None:
        client = client_for(tenant.api_key)
        barrier.wait()
        response = client.post(url, PERSON if operation == "patient" else None, format="json", **keyed("race"))
        body = response.json()
        with lock:
            answers.append(
                (
                    response.status_code,
                    body.get("requestId") or body.get("id"),
                    response.headers.get("Idempotent-Replayed"),
                )
            )

    threads = [db_thread(call) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == racers, answers
    assert len({answer[1] for answer in answers}) == 1, answers
    assert {answer[0] for answer in answers} == ({200} if operation == "bulk" else {201})
    assert sorted(answer[2] or "" for answer in answers) == [""] + ["true"] * (racers - 1)
    model = BulkRequest if operation == "bulk" else Patient
    assert model.objects.count() == 1 and IdempotencyKey.objects.count() == 1


def test_openapi_documents_the_header():
    from django.test import Client

    paths = Client().get("/openapi.json").json()["paths"]
    for path in ("/medical/v1/patient/bulk", "/medical/v1/patient/bulk/{request_id}/confirm", "/medical/v1/patient"):
        names = [parameter["name"] for parameter in paths[path]["post"].get("parameters", [])]
        assert "Idempotency-Key" in names, path
