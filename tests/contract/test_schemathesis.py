"""Property-based contract test: schemathesis generates requests from our own /openapi.json and checks that no
answer is a server error and every answer conforms to the schema (status codes and bodies)."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from bulkimport.models import BulkRequest
from cohorts.models import Cohort
from devtools.sample import SAMPLE_FACILITY_ADDRESS
from docqueries.models import DocumentQuery
from idempotency.models import IdempotencyKey
from metriport_bulk.wsgi import application
from patients.models import Facility, Patient
from patients.validators import npi_with_check_digit
from webhooks.models import WebhookEndpoint, WebhookMessage

pytestmark = pytest.mark.django_db

# Per operation and phase; ~16 operations run in ~15 s on one core at 30.
MAX_EXAMPLES = 30
STATEFUL_EXAMPLES = 20
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


# Loaded at collection (schema generation needs no database). Not `schemathesis.pytest.from_fixture`: its lazy
# loader reads a pytest-internal attribute that pytest 9 no longer has.
schema = schemathesis.openapi.from_wsgi("/openapi.json", application)


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Schemathesis calls the WSGI app itself, whose request_finished signal would close the database connection
    the test's transaction lives on (Django's test client disconnects it the same way)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case, tenant):
    case.call_and_validate(headers={"x-api-key": tenant.api_key}, checks=CHECKS)


def _facility_body(npi_body: str) -> dict:
    return {"name": "Contract Clinic", "npi": npi_with_check_digit(npi_body), "address": dict(SAMPLE_FACILITY_ADDRESS)}


def test_successful_answers_conform(tenant):
    """Generated input rarely passes validation (an NPI is Luhn-checked): the success answers, checked with the
    same checks on real ids."""
    headers = {"x-api-key": tenant.api_key}

    def call(path: str, method: str, **kwargs):
        return schema[path][method].Case(**kwargs).call_and_validate(headers=headers, checks=CHECKS)

    created = call("/medical/v1/facility", "POST", body=_facility_body("555555555"), media_type="application/json")
    facility_id = created.json()["id"]
    call("/medical/v1/facility/{facility_id}", "GET", path_parameters={"facility_id": facility_id})
    call(
        "/medical/v1/facility/{facility_id}",
        "PUT",
        path_parameters={"facility_id": facility_id},
        body=_facility_body("555555556"),
        media_type="application/json",
    )
    bulk = call("/medical/v1/patient/bulk", "POST", query={"facilityId": facility_id}).json()
    call("/medical/v1/patient/bulk/{request_id}", "GET", path_parameters={"request_id": bulk["requestId"]})
    listed = call("/medical/v1/patient/bulk", "GET", query={"count": 1}).json()
    assert listed["requests"]
    call("/medical/v1/facility", "GET", query={"count": 1})


def _forget_what_the_sequence_wrote(tenant) -> None:
    """Each sequence starts from the same database (the tenant's customer, key and facility), so Hypothesis
    replays a failing sequence as it ran instead of reporting a flaky strategy."""
    customer = tenant.customer
    BulkRequest.objects.filter(customer=customer).delete()  # before facilities: a request protects its facility
    for model in (Patient, Cohort, DocumentQuery, WebhookMessage, IdempotencyKey, WebhookEndpoint):
        model.objects.filter(customer=customer).delete()
    Facility.objects.filter(customer=customer).exclude(id=tenant.facility.id).delete()
    # The tenant's facility as it was: a sequence may have changed or deleted it (save() puts it back).
    tenant.facility.save()


def test_stateful_sequences_conform(tenant):
    """Sequences along the links schemathesis infers from the schema (a created facility or bulk request, then
    its GET/PUT with the id of the answer), with the same checks."""

    class Workflow(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"headers": {"x-api-key": tenant.api_key}}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))

        def teardown(self):
            _forget_what_the_sequence_wrote(tenant)

    Workflow.run(
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=6,
            derandomize=True,
            # No shrinking: the examples share the test's database (what one creates, the next lists), so a
            # failing sequence replays differently and Hypothesis would report a flaky strategy instead of it.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
