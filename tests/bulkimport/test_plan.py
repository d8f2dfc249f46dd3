"""A dry run is a plan (issue 22): each row's action through the HTTP API, on both stores: would create,
would update, unchanged, duplicate; the real import's created/updated/unchanged/duplicate; confirm applies
exactly the plan, and a competing write between preview and confirm makes rows `drifted` (onDrift=fail
fails them, onDrift=apply applies the new decision); the facility's patients no row matched (absent)."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlsplit

import pytest
import requests

from bulkimport import services
from bulkimport.models import BulkRequest
from bulkimport.store import store
from metriport_bulk.lib.csvio import RESULT_COLUMNS
from patients.models import Patient, PatientFacility
from tests.helpers.api import client_for
from tests.helpers.bulk import csv_bytes, person, result_rows, run_inline
from tests.helpers.factories import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

MATCH = "firstName lastName dob genderAtBirth zip"


@pytest.fixture
def tenant(db):
    return make_tenant("Plan Health")


@pytest.fixture
def api(tenant):
    return client_for(tenant.api_key)


def bulk(api, body: bytes, *, dry_run: bool) -> dict:
    """POST a bulk request, upload `body`, run the pipeline inline, GET the request."""
    created = api.post(f"/medical/v1/patient/bulk?dryRun={'true' if dry_run else 'false'}")
    assert created.status_code == 200, created.json()
    request = BulkRequest.objects.get(id=created.json()["requestId"])
    services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
    return finish(api, request.id)


def finish(api, request_id) -> dict:
    run_inline(request_id)
    answer = api.get(f"/medical/v1/patient/bulk/{request_id}")
    assert answer.status_code == 200
    assert answer.json()["status"] == "completed", answer.json()
    return answer.json()


def confirm(api, dry: dict, **params) -> dict:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    answer = api.post(f"/medical/v1/patient/bulk/{dry['requestId']}/confirm" + (f"?{query}" if query else ""))
    assert answer.status_code == 200, answer.json()
    return finish(api, answer.json()["requestId"])


def actions(answer: dict) -> list[tuple[str, str, str]]:
    return [(r["action"], r["matchedPatientId"], r["status"]) for r in result_rows(answer["requestId"])]


def absent_csv(api, answer: dict) -> tuple[dict, list[dict]]:
    response = api.get(f"/medical/v1/patient/bulk/{answer['requestId']}/absent")
    assert response.status_code == 200, response.json()
    body = response.json()
    url = urlsplit(body["url"])
    if url.path.startswith("/files/"):  # local storage (embedded): the service's own signed download URL
        content = b"".join(api.get(url.path).streaming_content)
    else:  # S3: a pre-signed URL of the object store
        content = requests.get(body["url"], timeout=30).content
    return body, list(csv.DictReader(io.StringIO(content.decode("utf-8"), newline="")))


def existing(api, first: str, *, zip_code: str = "10001", ext: str = "") -> str:
    """A patient made through the single-patient API (as another system would), its id."""
    data = {
        "firstName": first,
        "lastName": "Doe",
        "dob": "1980-01-02",
        "genderAtBirth": "F",
        "address": [{"addressLine1": "1 Main St", "city": "New York", "state": "NY", "zip": zip_code}],
    }
    if ext:
        data["externalId"] = ext
    answer = api.post("/medical/v1/patient", data, format="json")
    assert answer.status_code in (200, 201), answer.json()
    return answer.json()["id"]


def test_a_dry_run_shows_each_rows_action_and_confirm_writes_exactly_that(api, tenant):
    kept = existing(api, "Kay")  # the roster has her again, with an external id now
    same = existing(api, "Sam", ext="S-1")  # the roster has him exactly as stored
    gone = existing(api, "Gus")  # not on the roster any more
    rows = [
        person("Kay", ext="K-1"),  # 1 would update Kay
        person("Sam", ext="S-1"),  # 2 unchanged
        person("Nia"),  # 3 would create
        person("NIA", ext="N-2"),  # 4 duplicate of row 3
        person("Bob", dob="not a date"),  # 5 invalid
        person("Sam", ext="S-1", zip_code="10001"),  # 6 duplicate of row 2
    ]
    dry = bulk(api, csv_bytes(rows), dry_run=True)
    would = {"wouldCreate": 1, "wouldUpdate": 1, "unchanged": 1, "duplicate": 2}
    assert dry["plan"] == {
        "actions": would,
        "absentFromFile": 1,
        "documentQueries": 3,  # Kay, Sam and Nia, once each
        "facilities": {str(tenant.facility.id): would},
    }
    assert actions(dry) == [
        ("would update", kept, "successful"),
        ("unchanged", same, "successful"),
        ("would create", "", "successful"),
        ("duplicate", "", "successful"),
        ("", "", "failed"),
        ("duplicate", same, "successful"),
    ]
    result = result_rows(dry["requestId"])
    assert tuple(list(result[0])[-len(RESULT_COLUMNS) :]) == RESULT_COLUMNS
    assert result[0]["matchedOn"] == MATCH and result[1]["matchedOn"] == f"{MATCH} externalId"
    # Rows are named as a spreadsheet shows them: row 3 is on line 4 (the header is line 1).
    assert result[3]["reason"] == "Same person as row 3 (spreadsheet line 4)"
    assert result[5]["reason"] == "Same person as row 2 (spreadsheet line 3)"
    assert result[4]["errorCode"] == "invalid_dob" and "dob" in result[4]["reason"]
    assert all(not r["metriportId"] for r in result)  # a dry run writes nothing
    assert Patient.objects.count() == 3
    summary, absent = absent_csv(api, dry)
    assert summary["absentFromFile"] == 1 and [r["metriportId"] for r in absent] == [gone]
    assert "Gus" not in summary["url"]  # ids in the URL, never a name

    real = confirm(api, dry)
    did = {"created": 1, "updated": 1, "unchanged": 1, "duplicate": 2, "drifted": 0}
    assert real["plan"] == {
        "actions": did,
        "absentFromFile": 1,
        "documentQueries": 3,
        "facilities": {str(tenant.facility.id): did},
    }
    outcome = result_rows(real["requestId"])
    created = outcome[2]["metriportId"]
    assert [(r["action"], r["metriportId"], r["matchedPatientId"]) for r in outcome] == [
        ("updated", kept, kept),
        ("unchanged", same, same),
        ("created", created, ""),
        ("duplicate", created, created),
        ("", "", ""),
        ("duplicate", same, same),
    ]
    # Exactly the plan: one patient more, Kay and the new patient hold their last rows' values, Gus untouched.
    assert Patient.objects.count() == 4
    assert Patient.objects.get(id=kept).external_id == "K-1"
    assert Patient.objects.get(id=created).external_id == "N-2"
    assert Patient.objects.filter(id=gone).exists()
    assert set(PatientFacility.objects.values_list("patient_id", flat=True)) == set(
        Patient.objects.values_list("id", flat=True)
    )

    # Round trip: the same file again changes nothing, and no patient of the facility is missing from it...
    again = bulk(api, csv_bytes(rows), dry_run=True)
    # Nia's patient holds row 4's values (its last row), so row 3 would update her back; Kay and Sam: unchanged.
    assert again["plan"]["actions"] == {"wouldCreate": 0, "wouldUpdate": 1, "unchanged": 2, "duplicate": 2}
    # ...but Gus, who was never on the roster.
    assert again["plan"]["absentFromFile"] == 1


def test_the_plan_reads_the_addresses_only_of_rows_that_may_match_or_repeat(api, monkeypatch):
    """A row whose match key no patient has and no other row of the file shares would create its patient
    whatever its addresses: the plan decides it without reading them (a roster's first import reads none).
    The others are decided on their zips as before."""
    kay = existing(api, "Kay")
    read: list[int] = []
    row_zips = store().row_zips

    def spy(request_id, rows):
        read.extend(number for _, number in rows)
        return row_zips(request_id, rows)

    monkeypatch.setattr(store(), "row_zips", spy)
    rows = [
        person("Kay", ext="K-1"),  # 1 a patient has her key and zip: would update
        person("Nia"),  # 2 nobody else has her key: would create, addresses unread
        person("Ola"),  # 3 her key is on row 4 too: would create
        person("OLA", zip_code="20002"),  # 4 no zip shared with row 3: another person, would create
        person("Ted", zip_code="30003"),  # 5 as row 2
    ]
    dry = bulk(api, csv_bytes(rows), dry_run=True)
    assert actions(dry) == [("would update", kay, "successful")] + [("would create", "", "successful")] * 4
    assert read == [1, 3, 4]


def test_round_trip_preview_confirm_same_file_again_is_all_unchanged(api):
    rows = [person("Ann"), person("Bo", zip_code="02134"), person("Cy", ext="C-1")]
    real = confirm(api, bulk(api, csv_bytes(rows), dry_run=True))
    assert real["plan"]["actions"]["created"] == 3
    again = bulk(api, csv_bytes(rows), dry_run=True)
    assert again["plan"]["actions"] == {"wouldCreate": 0, "wouldUpdate": 0, "unchanged": 3, "duplicate": 0}
    assert again["plan"]["absentFromFile"] == 0
    assert {r["action"] for r in result_rows(again["requestId"])} == {"unchanged"}
    summary, absent = absent_csv(api, again)
    assert summary["absentFromFile"] == 0 and absent == []


def drifting_preview(api) -> tuple[dict, str]:
    """A preview of Ann (would create) and Kay (would update), then two competing writes: another system
    creates Ann, and renames Kay so she no longer matches. Returns the preview and Kay's id."""
    kay = existing(api, "Kay")
    dry = bulk(api, csv_bytes([person("Ann"), person("Kay", ext="K-1"), person("Lu")]), dry_run=True)
    assert [a for a, _, _ in actions(dry)] == ["would create", "would update", "would create"]
    existing(api, "Ann")
    assert api.put(
        f"/medical/v1/patient/{kay}",
        {
            "firstName": "Kaye",
            "lastName": "Doe",
            "dob": "1980-01-02",
            "genderAtBirth": "F",
            "address": [{"addressLine1": "1 Main St", "city": "New York", "state": "NY", "zip": "10001"}],
        },
        format="json",
    ).status_code in (200, 201)
    return dry, kay


def test_confirm_fails_rows_whose_decision_changed_since_the_preview_by_default(api):
    dry, kay = drifting_preview(api)
    before = Patient.objects.count()
    real = confirm(api, dry)  # onDrift defaults to fail
    assert real["plan"]["actions"] == {"created": 1, "updated": 0, "unchanged": 0, "duplicate": 0, "drifted": 2}
    assert (real["successful"], real["failed"]) == (1, 2)
    rows = result_rows(real["requestId"])
    assert [(r["action"], r["status"], r["errorCode"]) for r in rows] == [
        ("drifted", "failed", "drifted"),
        ("drifted", "failed", "drifted"),
        ("created", "successful", ""),
    ]
    assert rows[0]["reason"].startswith("Changed since the preview: planned would create, now would leave patient")
    assert rows[1]["reason"].startswith(
        f"Changed since the preview: planned would update patient {kay}, now would create"
    )
    assert Patient.objects.count() == before + 1  # only Lu: nothing was re-decided silently
    assert Patient.objects.get(id=kay).first_name == "Kaye"


def test_confirm_with_on_drift_apply_applies_the_new_decision_and_reports_it(api):
    dry, kay = drifting_preview(api)
    ann = Patient.objects.get(first_name="Ann").id
    real = confirm(api, dry, onDrift="apply")
    assert real["plan"]["actions"] == {"created": 1, "updated": 0, "unchanged": 0, "duplicate": 0, "drifted": 2}
    rows = result_rows(real["requestId"])
    assert [(r["action"], r["status"]) for r in rows] == [
        ("drifted", "successful"),
        ("drifted", "successful"),
        ("created", "successful"),
    ]
    assert rows[0]["metriportId"] == str(ann)  # Ann, created meanwhile, is updated rather than doubled
    assert rows[1]["metriportId"] not in ("", kay)  # Kay no longer matches: a new patient
    assert Patient.objects.filter(first_name="Ann").count() == 1


def test_confirm_refuses_an_unknown_on_drift_value(api):
    dry = bulk(api, csv_bytes([person("Ann")]), dry_run=True)
    answer = api.post(f"/medical/v1/patient/bulk/{dry['requestId']}/confirm?onDrift=maybe")
    assert answer.status_code == 400 and "onDrift" in answer.json()["detail"]
    assert not BulkRequest.objects.filter(confirms_id=dry["requestId"]).exists()


def test_a_direct_import_reports_actions_and_absent_patients(api):
    gone = existing(api, "Gus")
    kept = existing(api, "Kay")
    real = bulk(api, csv_bytes([person("Kay", ext="K-9"), person("Kay", ext="K-9"), person("Ann")]), dry_run=False)
    assert real["plan"]["actions"] == {"created": 1, "updated": 1, "unchanged": 0, "duplicate": 1, "drifted": 0}
    assert real["plan"]["absentFromFile"] == 1 and real["plan"]["documentQueries"] == 2
    assert [a for a, _, _ in actions(real)] == ["updated", "duplicate", "created"]
    assert [r["matchedPatientId"] for r in result_rows(real["requestId"])][:2] == [kept, kept]
    summary, absent = absent_csv(api, real)
    assert [r["metriportId"] for r in absent] == [gone]
    assert list(absent[0]) == [
        "metriportId",
        "externalId",
        "firstName",
        "lastName",
        "dob",
        "genderAtBirth",
        "dateCreated",
    ]


def test_absent_is_409_before_completion_and_404_for_another_customer(api, tenant):
    waiting = api.post("/medical/v1/patient/bulk?dryRun=true").json()
    answer = api.get(f"/medical/v1/patient/bulk/{waiting['requestId']}/absent")
    assert answer.status_code == 409 and answer.json()["name"] == "ConflictError"
    assert "plan" not in api.get(f"/medical/v1/patient/bulk/{waiting['requestId']}").json()  # omitted, not null
    other = client_for(make_tenant("Other").api_key)
    assert other.get(f"/medical/v1/patient/bulk/{waiting['requestId']}/absent").status_code == 404


def test_absent_of_a_request_completed_before_plans_is_404_saying_so(api):
    """A request that completed before absent lists existed (no absent file) was answered 409 "known once it has
    completed" although it had: a contradiction the client cannot act on."""
    done = bulk(api, csv_bytes([person("Ann")]), dry_run=True)
    BulkRequest.objects.filter(id=done["requestId"]).update(absent_key="", plan={})
    answer = api.get(f"/medical/v1/patient/bulk/{done['requestId']}/absent")
    assert answer.status_code == 404 and answer.json()["name"] == "NotFoundError", answer.json()
    assert "before" in answer.json()["detail"] and "dry run" in answer.json()["detail"]
