"""No working link reaches a log line (issue 23, defect 2).

gunicorn runs with the bundled config (deploy/gunicorn.conf.py) on the embedded default with LOG_FORMAT=json, and
serves a real upload (PUT to the signed upload URL), a result download (GET on the signed file URL), a replay of
the used upload URL (409), a Referer carrying a link, and a download whose file is gone (a 404 saying so, once
a 500). Neither token appears in anything the process wrote; every line is JSON.

Failure modes covered: a signed upload or download token whole in the access log's path, request line or
referer, or in Django's request lines (unit-tested below: the integrated run logs none, as django.request logs errors only), or in the development server's
request lines (django.server); S3 pre-signed signatures likewise.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path

import pytest
import requests

from metriport_bulk.logging import REDACTED, redact_tokens
from tests.helpers.bulk import csv_bytes, person
from tests.ops.test_served import GUNICORN, Served, embedded_env, free_port, manage

SIGNED = (
    "eyJyIjoiMWIyYzNkNGUtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwIn0:1xZXqe:okJfXfQnP6HRsoIQ0QE8jnn9Z5TCc4-sA34wx7NUjrQ"
)
COMPRESSED = ".eJyrVspWslJKKs3J1jdMMko2TjFJ1TUAAjQCBvSLUotLc0r0kovLlHSU0qBadVG1oqhJVbIyMzCoBQCcEhw2:1xZXqe:zisyc-fYmPaHZU4NzVI9PMtEmTeXUluLX7D60IFiZCE"
S3_URL = (
    "https://s3.example/b/k.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261204&"
    "X-Amz-Signature=0123456789abcdef&X-Amz-Security-Token=FQoGZXIvYXdz"
)


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"GET /uploads/bulk/{SIGNED} 200", "GET /uploads/bulk/[redacted] 200"),
        (f"Internal Server Error: /files/{COMPRESSED}", "Internal Server Error: /files/[redacted]"),
        (f"referer=http://h/files/{COMPRESSED}?x=1", "referer=http://h/files/[redacted]?x=1"),
        (S3_URL, S3_URL.split("AKIA")[0] + "[redacted]&X-Amz-Signature=[redacted]&X-Amz-Security-Token=[redacted]"),
        ("2026-12-04 18:00:00 bulk request 1b2c3d4e-0000-0000-0000-000000000000 parsed", None),
        ("[fe80::1]:8000 GET /healthz", None),
    ],
)
def test_redact_tokens(text: str, kept: str | None) -> None:
    assert redact_tokens(text) == (text if kept is None else kept)


@pytest.mark.parametrize("logger_name", ["django.request", "django.server", "metriport_bulk.anything"])
def test_django_request_and_server_lines_go_through_the_redacting_handler(logger_name: str) -> None:
    logger = logging.getLogger(logger_name)
    handlers = [h for h in logger.handlers + (logging.getLogger().handlers if logger.propagate else [])]
    console = [h for h in handlers if any(type(f).__name__ == "RedactTokens" for f in h.filters)]
    assert console, f"{logger_name} reaches no handler redacting tokens"
    record = logger.makeRecord(
        logger_name, logging.ERROR, __file__, 1, "Internal Server Error: %s", (f"/files/{SIGNED}",), None
    )
    for handler in console:
        assert handler.filter(record)
        assert SIGNED not in handler.format(record) and REDACTED in handler.format(record)


@pytest.fixture
def gunicorn_json(tmp_path):
    assert GUNICORN.exists(), "gunicorn is pinned in requirements.txt"
    env = {**embedded_env(tmp_path / "var"), "LOG_FORMAT": "json"}
    manage(env, "migrate", "--noinput")
    onboard = manage(env, "create_customer", "Acme Health", "--with-key")
    fields = dict(line.split("=", 1) for line in onboard.splitlines() if "=" in line)
    facility = manage(
        env, "create_facility", fields["customer_id"], "--name", "Main", "--npi", "1234567893",
        "--address-line1", "1 Main St", "--city", "Springfield", "--state", "IL", "--zip", "62701",
    )  # fmt: skip
    facility_id = re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", facility).group(0)
    port = free_port()
    env |= {"GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    served = Served(
        [str(GUNICORN), "-c", "deploy/gunicorn.conf.py", "metriport_bulk.wsgi"], env, port, tmp_path / "gunicorn.log"
    )
    try:
        yield served, fields["api_key"], env, facility_id
    finally:
        served.stop()


def _completed_elsewhere(env: dict[str, str], facility_id: str, tmp_path: Path) -> str:
    """A completed request of the same install: gunicorn alone runs no worker on the embedded default, the
    bulk_create command does (in its own process, same database and files). Returns its id."""
    path = tmp_path / "patients.csv"
    path.write_bytes(csv_bytes([person("Cy"), person("Di")]))
    out = manage(env, "bulk_create", "--facility", facility_id, "--file", str(path))
    return re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", out).group(0)


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_gunicorn_access_and_error_lines_hold_no_token(gunicorn_json, tmp_path):
    served, api_key, env, facility_id = gunicorn_json
    created = requests.post(f"{served.url}/medical/v1/patient/bulk", headers={"x-api-key": api_key}, timeout=10)
    upload_url = created.json()["uploadUrl"]
    assert requests.put(upload_url, data=csv_bytes([person("Ann"), person("Bob")]), timeout=30).status_code == 200
    assert requests.put(upload_url, data=b"again", timeout=30).status_code == 409
    completed = _completed_elsewhere(env, facility_id, tmp_path)
    final = requests.get(
        f"{served.url}/medical/v1/patient/bulk/{completed}", headers={"x-api-key": api_key}, timeout=10
    )
    result_url = final.json()["result"]
    assert "/files/" in result_url
    assert requests.get(result_url, headers={"Referer": result_url}, timeout=10).status_code == 200
    # The file gone (an operator's cleanup): the download is a 404 saying so (its access line is awaited).
    for stored in Path(env["DATA_DIR"]).rglob("result.csv"):
        stored.unlink()
    gone = requests.get(result_url, timeout=10)
    assert gone.status_code == 404 and gone.json()["detail"] == "The file is no longer stored."

    deadline = time.monotonic() + 10
    while '"status": 404' not in served.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = served.log.read_text()
    tokens = [_token(upload_url), _token(result_url)]
    assert [token for token in tokens if token in text] == []
    lines = [line for line in text.splitlines() if line.strip()]
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            entries.append(None)
    not_json = [line for line, entry in zip(lines, entries, strict=True) if entry is None]
    # gunicorn's own start-up lines come before the config file's logger class takes over: none after it.
    assert not [line for line in not_json if "/uploads/" in line or "/files/" in line], not_json
    access = [entry["http"] for entry in entries if entry and "http" in entry]
    puts = [(a["path"], a["status"]) for a in access if a["method"] == "PUT"]
    assert puts == [("/uploads/bulk/[redacted]", 200), ("/uploads/bulk/[redacted]", 409)]
    downloads = [a["status"] for a in access if a["path"] == "/files/[redacted]"]
    assert downloads == [200, 404]
