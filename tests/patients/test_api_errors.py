"""The JSON error envelope everywhere: 404 outside DRF, 405, 500 without a stack trace, schema + docs; bad input
(cursors, oversized or deeply nested bodies, CSRF failures) is a 4xx envelope, never a 500 or an HTML page."""

import base64
import json

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import path
from django.views.decorators.http import require_GET

from metriport_bulk.api.middleware import JsonErrorsMiddleware
from metriport_bulk.urls import urlpatterns as base_patterns

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("secret patient name Jane Doe")


def _form(request):
    return HttpResponse("ok")  # a plain Django view: CSRF-checked on POST


urlpatterns = [*base_patterns, path("boom", _boom), path("form", _form)]
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


ENVELOPE_KEYS = {"status", "name", "title", "detail"}


def _assert_envelope(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = json.loads(response.content)
    assert set(body) == ENVELOPE_KEYS and body["status"] == status
    return body


def _cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor("p=not-a-date"),
        _cursor("p=2024-13-45 99:00:00"),
        _cursor("r=1&p=9999-99-99"),
        _cursor("o=abc"),
        "%%%not-base64",
        "w6k=",  # base64 of non-ASCII bytes
    ],
)
@pytest.mark.parametrize("url", ["/medical/v1/facility", "/medical/v1/patient", "/medical/v1/patient/bulk"])
def test_bad_cursor_is_400(api, url, cursor):
    body = _assert_envelope(api.get(url, {"cursor": cursor}), 400)
    assert "cursor" in body["detail"]


def test_a_cursor_from_a_list_answer_still_pages(api, tenant):
    from tests.helpers.factories import make_facility

    for index in range(3):
        make_facility(tenant.customer, name=f"Clinic {index}", npi_body=f"98765432{index}")
    first = api.get("/medical/v1/facility", {"count": 2}).json()
    assert first["meta"]["nextPage"]
    second = api.get(first["meta"]["nextPage"]).json()
    assert len(first["facilities"]) == 2 and len(second["facilities"]) >= 1
    assert not {f["id"] for f in first["facilities"]} & {f["id"] for f in second["facilities"]}


def test_ten_megabyte_json_body_is_413(api, settings):
    body = json.dumps({"name": "x" * (10 * 1024 * 1024)})
    response = api.post("/medical/v1/facility", data=body, content_type="application/json")
    detail = _assert_envelope(response, 413)["detail"]
    assert f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,}" in detail


def test_body_at_the_limit_is_parsed(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 200
    response = api.post("/medical/v1/facility", data=json.dumps({"name": "x" * 150}), content_type="application/json")
    assert response.status_code == 400 and "npi" in response.json()["detail"]  # validated, not refused for size


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_deeply_nested_json_is_400(api, opening):
    closing = "]" if opening == "[" else "}"
    body = opening * 5000 + "1" + closing * 5000
    response = api.post("/medical/v1/facility", data=body, content_type="application/json")
    assert "nested too deeply" in _assert_envelope(response, 400)["detail"]


def test_post_healthz_is_405_json_not_the_csrf_page():
    client = Client(enforce_csrf_checks=True)
    body = _assert_envelope(client.post("/healthz"), 405)
    assert body["name"] == "MethodNotAllowedError"
    assert client.post("/healthz")["Allow"] == "GET, HEAD"
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.urls("tests.patients.test_api_errors")
def test_csrf_failure_outside_the_admin_is_a_json_envelope():
    response = Client(enforce_csrf_checks=True).post("/form", {"a": "b"})
    assert "CSRF" in _assert_envelope(response, 403)["detail"]


def test_csrf_failure_on_the_admin_keeps_djangos_page():
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403 and response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options"])
def test_unknown_path_is_a_json_404_for_every_method(method):
    _assert_envelope(getattr(Client(enforce_csrf_checks=True), method)("/medical/v1/nope"), 404)


@pytest.mark.parametrize(
    ("method", "url"),
    [("patch", "/medical/v1/facility"), ("put", "/medical/v1/patient/bulk"), ("post", "/openapi.json")],
)
def test_unknown_method_is_a_json_405(api, method, url):
    assert _assert_envelope(getattr(api, method)(url), 405)["name"] == "MethodNotAllowedError"


def test_plain_django_error_pages_become_envelopes():
    """Whatever answers an HTML error outside the admin (here a plain view refusing a method) is rewritten."""
    view = require_GET(lambda request: HttpResponse("ok"))
    response = JsonErrorsMiddleware(view)(RequestFactory().post("/x"))
    body = _assert_envelope(response, 405)
    assert body["detail"] == "POST is not allowed here." and response["Allow"] == "GET"


def test_openapi_documents_the_error_envelopes():
    """Regression (schemathesis, undocumented status codes): each operation lists the errors it can answer."""
    schema = Client().get("/openapi.json").json()
    assert schema["components"]["schemas"]["Error"]["required"] == ["status", "name", "title", "detail"]
    paths = schema["paths"]
    assert {"400", "401", "413", "415"} <= set(paths["/medical/v1/facility"]["post"]["responses"])
    assert "201" in paths["/medical/v1/facility"]["post"]["responses"]
    assert {"401", "404"} <= set(paths["/medical/v1/patient/bulk/{request_id}"]["get"]["responses"])
    assert {"403", "411", "413"} <= set(paths["/uploads/bulk/{token}"]["put"]["responses"])
    assert "text/csv" in paths["/files/{token}"]["get"]["responses"]["200"]["content"]
    bulk = schema["components"]["schemas"]["BulkRequest"]["properties"]
    assert bulk["startedAt"].get("nullable") and bulk["finishedAt"].get("nullable")
