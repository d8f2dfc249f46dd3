"""Per-row facility: an optional `facilityId` column routes each row's patient to one of the customer's
facilities; an empty cell keeps the request's. Failure modes named: an unknown id, a malformed id, another
customer's facility, an inactive facility (each a row error, never a 404 of the request; in a dry run too);
the same person routed to two facilities (one patient, linked to both); matching stays per customer."""

from __future__ import annotations

import csv
import io

import pytest

from bulkimport import services
from bulkimport.models import BulkRequest, BulkRowError
from metriport_bulk.lib import storage
from metriport_bulk.lib.csvio import RESULT_COLUMNS
from patients.models import Facility, Patient, PatientFacility
from tests.helpers.api import bulk_through_api
from tests.helpers.bulk import HEADER, csv_bytes, person, result_rows, run_inline
from tests.helpers.factories import make_facility

pytestmark = pytest.mark.django_db(transaction=True)

ROUTED_HEADER = [*HEADER, "facilityId"]


def run(tenant, rows, dry_run=False) -> BulkRequest:
    request = services.bulk_request_create(
        customer=tenant.customer, facility_id=str(tenant.facility.id), dry_run=dry_run
    )
    body = csv_bytes(rows, ROUTED_HEADER)
    services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
    run_inline(request.id)
    request.refresh_from_db()
    assert request.status == "completed", request.reason
    return request


def facilities_of(first_name: str) -> set:
    patient = Patient.objects.get(first_name=first_name)
    return set(PatientFacility.objects.filter(patient=patient).values_list("facility_id", flat=True))


def errors_of(request) -> dict[int, tuple[str, str, str]]:
    return {
        number: (code, field, message)
        for number, code, field, message in BulkRowError.objects.filter(request_id=request.id).values_list(
            "row_number", "code", "field", "message"
        )
    }


def test_rows_go_to_their_facility_and_empty_cells_to_the_requests(tenant, api):
    north = make_facility(tenant.customer, name="North", npi_body="222222222")
    request = run(tenant, [[*person("Ann"), str(north.id)], [*person("Bea"), ""], [*person("Cy"), f" {north.id} "]])
    assert request.failed == 0
    assert facilities_of("Ann") == {north.id} == facilities_of("Cy")
    assert facilities_of("Bea") == {tenant.facility.id}
    ann = Patient.objects.get(first_name="Ann")
    assert api.get(f"/medical/v1/patient/{ann.id}").json()["facilityIds"] == [str(north.id)]
    listed = api.get("/medical/v1/patient", {"facilityId": str(north.id)}).json()["patients"]
    assert {p["firstName"] for p in listed} == {"Ann", "Cy"}


def test_unknown_malformed_other_customers_and_inactive_facilities_are_row_errors(tenant, other_tenant):
    closed = make_facility(tenant.customer, name="Closed", npi_body="333333333")
    Facility.objects.filter(id=closed.id).update(active=False)
    rows = [
        [*person("Ann"), "00000000-0000-0000-0000-000000000000"],
        [*person("Bea"), "not-an-id"],
        [*person("Cy"), str(other_tenant.facility.id)],
        [*person("Di"), str(closed.id)],
        [*person("Ed"), ""],
    ]
    request = run(tenant, rows)
    assert (request.successful, request.failed) == (1, 4)
    errors = errors_of(request)
    assert {number: code for number, (code, _, _) in errors.items()} == dict.fromkeys(range(1, 5), "unknown_facility")
    assert all(field == "facilityId" for _, field, _ in errors.values())
    assert errors[1][2].startswith("Unknown facilityId") and errors[4][2].startswith("Inactive facilityId")
    assert str(other_tenant.facility.id) not in errors[3][2]
    assert list(Patient.objects.values_list("first_name", flat=True)) == ["Ed"]
    assert not PatientFacility.objects.filter(facility=other_tenant.facility).exists()
    assert [r["status"] for r in result_rows(request.id)] == ["failed"] * 4 + ["successful"]


def test_a_dry_run_reports_facility_errors_and_writes_nothing(tenant):
    request = run(tenant, [[*person("Ann"), "00000000-0000-0000-0000-000000000000"]], dry_run=True)
    assert request.failed == 1 and errors_of(request)[1][0] == "unknown_facility"
    assert not Patient.objects.exists()


def test_one_person_routed_to_two_facilities_is_one_patient_linked_to_both(tenant):
    north = make_facility(tenant.customer, name="North", npi_body="222222222")
    run(tenant, [[*person("Ann"), str(north.id)], [*person("Ann"), ""]])
    assert Patient.objects.count() == 1
    assert facilities_of("Ann") == {north.id, tenant.facility.id}


def test_matching_stays_per_customer_across_facilities(tenant):
    north = make_facility(tenant.customer, name="North", npi_body="222222222")
    run(tenant, [[*person("Ann"), ""]])
    request = run(tenant, [[*person("Ann"), str(north.id)]])  # the same person, now seen at North
    assert Patient.objects.count() == 1 and request.successful == 1
    assert facilities_of("Ann") == {tenant.facility.id, north.id}


def test_the_admin_row_page_shows_the_rows_facility(tenant, django_user_model, client):
    north = make_facility(tenant.customer, name="North", npi_body="222222222")
    request = run(tenant, [[*person("Ann"), str(north.id)], [*person("Bea"), ""]])
    from bulkimport.models import BulkRow

    client.force_login(django_user_model.objects.create_superuser("root", password="x" * 20))
    ann_row, bea_row = BulkRow.objects.filter(request_id=request.id).order_by("number")
    ann_page = client.get(f"/admin/bulkimport/bulkrow/{ann_row.pk}/change/").content.decode()
    bea_page = client.get(f"/admin/bulkimport/bulkrow/{bea_row.pk}/change/").content.decode()
    assert f"/admin/patients/facility/{north.id}/" in ann_page
    assert f"/admin/patients/facility/{tenant.facility.id}/" in bea_page


def test_the_result_file_says_each_rows_facility_in_its_last_column(tenant, api):
    north = make_facility(tenant.customer, name="North", npi_body="222222222")
    own = str(tenant.facility.id)
    rows = [
        [*person("Ann"), str(north.id)],  # routed
        [*person("Bea"), ""],  # the request's
        [*person("Cy"), "not-an-id"],  # refused: goes nowhere
        [*person("Di", dob="not a date"), ""],  # failed, names none: the request's
        [*person("Ed", dob="not a date"), str(north.id)],  # failed, names one: goes nowhere
    ]
    for dry_run in (True, False):
        body = csv_bytes(rows, ROUTED_HEADER)
        answer = bulk_through_api(api, body, dry_run=dry_run, query=f"&facilityId={own}")
        header, *lines = _result_lines(answer["requestId"])
        assert header == [*ROUTED_HEADER, *RESULT_COLUMNS] and header.count("facilityId") == 2
        status = header.index("status")
        assert [line[status] for line in lines] == ["successful", "successful", "failed", "failed", "failed"]
        assert [line[-1] for line in lines] == [str(north.id), own, "", own, ""]
        assert [line[len(ROUTED_HEADER) - 1] for line in lines] == [r[-1] for r in rows]  # theirs, as sent


def test_a_result_file_uploaded_again_keeps_its_own_facility_column(tenant, api):
    north = make_facility(tenant.customer, name="North", npi_body="222222222")
    own = str(tenant.facility.id)
    first = bulk_through_api(
        api,
        csv_bytes([[*person("Ann"), str(north.id)], [*person("Bea"), ""]], ROUTED_HEADER),
        query=f"&facilityId={own}",
    )
    again = bulk_through_api(api, _result_bytes(first["requestId"]), query=f"&facilityId={own}")
    assert again["status"] == "completed" and again["plan"]["actions"]["unchanged"] == 2
    assert again["plan"]["facilities"] == {
        own: {"created": 0, "updated": 0, "unchanged": 1, "duplicate": 0, "drifted": 0},
        str(north.id): {"created": 0, "updated": 0, "unchanged": 1, "duplicate": 0, "drifted": 0},
    }
    assert [line[-1] for line in _result_lines(again["requestId"])[1:]] == [str(north.id), own]
    assert _result_lines(again["requestId"])[0] == [*ROUTED_HEADER, *RESULT_COLUMNS]


def _result_bytes(request_id) -> bytes:
    request = BulkRequest.objects.get(id=request_id)
    with storage.open_for_read(request.result_key) as stream:
        return stream.read()


def _result_lines(request_id) -> list[list[str]]:
    return list(csv.reader(io.StringIO(_result_bytes(request_id).decode("utf-8"), newline="")))
