"""The JSON error envelope everywhere: 404 outside DRF, 405, 500 without a stack trace, schema + docs."""

import pytest
from django.test import Client
from django.urls import path

from metriport_bulk.urls import urlpatterns as base_patterns

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("secret patient name Jane Doe")


urlpatterns = [*base_patterns, path("boom", _boom)]
handler500 = "metriport_bulk.api.errors.json_500"


def test_unknown_path_is_json_404():
    response = Client().get("/no/such/path")
    assert response.status_code == 404
    assert response.json() == {
        "status": 404,
        "name": "NotFoundError",
        "title": "Not found",
        "detail": "No such resource.",
    }


def test_method_not_allowed_is_405_envelope(api):
    response = api.delete("/medical/v1/facility")
    assert response.status_code == 405
    assert response.json()["name"] == "MethodNotAllowedError"


@pytest.mark.urls("tests.patients.test_api_errors")
def test_unhandled_error_is_500_envelope_without_details(caplog):
    client = Client(raise_request_exception=False)
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json()["name"] == "InternalServerError"
    assert "Jane" not in response.content.decode()


def test_logged_tracebacks_drop_exception_messages():
    import logging

    from metriport_bulk.logging import RedactExceptionMessages

    values = {"dob": "1980-02-03", "name": "Jane Doe"}
    try:
        raise ValueError(f"dob {values['dob']} for {values['name']}")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed", None, exc_info=__import__("sys").exc_info()
        )
    assert RedactExceptionMessages().filter(record)
    text = logging.Formatter().format(record)
    assert "Jane" not in text and "1980" not in text
    assert "ValueError: <message redacted>" in text and "raise ValueError" in text


def test_openapi_schema_lists_every_endpoint():
    response = Client().get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for expected in [
        "/medical/v1/patient/bulk",
        "/medical/v1/patient/bulk/{request_id}",
        "/medical/v1/facility",
        "/medical/v1/facility/{facility_id}",
        "/medical/v1/patient",
        "/medical/v1/patient/{patient_id}",
    ]:
        assert expected in paths, expected
    assert response.json()["components"]["securitySchemes"]


def test_docs_page_is_served_without_network_assets():
    response = Client().get("/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html and "cdn.jsdelivr" not in html
