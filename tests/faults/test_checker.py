"""The campaign's checker can fail: on a clean completed request it finds nothing, and each kind of damage a
fault could do (a row lost, a result line changed, a second patient for one person, a patient made by no
row, a second final webhook, no `processing` before the final one, a request left processing, no final
webhook, a Document Query result in two messages) is counted where the campaign's line reports it."""

from __future__ import annotations

import uuid

import pytest

from bulkimport.models import BulkRequest, BulkRow
from patients.models import Patient
from tests.faults.checker import check_request
from tests.helpers.bulk import person, result_rows, run_rows

pytestmark = pytest.mark.django_db


def _delivery(request_id: str, status: str, message_id: str | None = None, t: float = 0.0) -> dict:
    return {
        "t": t,
        "body": {
            "meta": {"messageId": message_id or str(uuid.uuid4()), "type": "medical.bulk-patient-create"},
            "bulkPatientCreate": {"requestId": request_id, "status": status},
        },
    }


@pytest.fixture
def done(tenant):
    request, _ = run_rows(tenant, [person("Ann"), person("Bob"), person("Cy", zip_code="94110")])
    rows = result_rows(request.id)
    request_id = str(request.id)
    deliveries = [_delivery(request_id, "processing", t=1), _delivery(request_id, "completed", t=2)]
    return tenant, request_id, rows, deliveries


def _check(tenant, request_id, rows, deliveries, *, result=None, patients=3):
    return check_request(
        label="t",
        request_id=request_id,
        customer_id=tenant.customer.id,
        facility_id=tenant.facility.id,
        result_rows=rows if result is None else result,
        reference_rows=rows,
        reference_patients=patients,
        deliveries=deliveries,
    )


def test_a_clean_request_passes(done):
    tenant, request_id, rows, deliveries = done
    tally = _check(tenant, request_id, rows, deliveries)
    assert tally.ok(), tally.problems
    assert tally.rows == 3


def test_a_redelivered_final_webhook_is_allowed_and_counted(done):
    tenant, request_id, rows, deliveries = done
    again = {**deliveries[1], "t": 3}
    tally = _check(tenant, request_id, rows, [*deliveries, again])
    assert tally.ok(), tally.problems
    assert tally.redelivered == 1


def test_lost_rows_are_counted(done):
    tenant, request_id, rows, deliveries = done
    BulkRow.objects.filter(request_id=request_id, number=2).delete()
    tally = _check(tenant, request_id, rows, deliveries, result=rows[:2])
    assert tally.lost == 2  # the stored row and the result line


def test_a_changed_result_line_is_a_mismatch(done):
    tenant, request_id, rows, deliveries = done
    changed = [dict(row) for row in rows]
    changed[1]["action"] = "updated"
    tally = _check(tenant, request_id, rows, deliveries, result=changed)
    assert tally.mismatched == 1
    assert "line 2" in tally.problems[0]


def test_a_second_patient_for_one_person_is_a_duplicate(done):
    tenant, request_id, rows, deliveries = done
    twin = Patient.objects.filter(customer=tenant.customer).first()
    twin.pk = uuid.uuid4()
    twin.save(force_insert=True)
    tally = _check(tenant, request_id, rows, deliveries)
    assert tally.duplicated == 2  # a second patient of one person, made by no row
    assert not tally.ok()


def test_two_final_webhooks_and_no_processing_before(done):
    tenant, request_id, rows, deliveries = done
    second = _delivery(request_id, "completed", t=3)
    assert _check(tenant, request_id, rows, [*deliveries, second]).duplicated == 1
    tally = _check(tenant, request_id, rows, [deliveries[1], {**deliveries[0], "t": 5}])
    assert any("processing" in p for p in tally.problems)


def test_a_request_left_processing_or_without_final_webhook_is_stuck(done):
    tenant, request_id, rows, deliveries = done
    assert _check(tenant, request_id, rows, deliveries[:1]).stuck == 1
    BulkRequest.objects.filter(id=request_id).update(status="processing")
    assert _check(tenant, request_id, rows, deliveries).stuck == 1


def test_a_document_query_result_sent_twice_is_a_duplicate(done):
    tenant, request_id, rows, deliveries = done
    patient_id = str(Patient.objects.filter(customer=tenant.customer).first().id)

    def result() -> dict:
        meta = {"messageId": str(uuid.uuid4()), "type": "medical.document-download"}
        return {"t": 3, "body": {"meta": meta, "patients": [{"patientId": patient_id, "status": "completed"}]}}

    once = result()
    assert _check(tenant, request_id, rows, [*deliveries, once, once]).ok()  # a redelivery: same message
    assert _check(tenant, request_id, rows, [*deliveries, once, result()]).duplicated == 1
