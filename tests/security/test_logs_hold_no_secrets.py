"""Logs hold no secrets and no PHI (SPEC §1, §4, §6). Every logger of the process (ours, Django's incl.
django.server and django.request, Dramatiq's, botocore, urllib3) is captured at DEBUG while the real flow
runs: authenticated HTTP calls, an upload to S3, the worker's parse/apply/finish, webhooks, Document
Queries. No record's message, arguments, exception text or extra attributes may contain an API key, a
webhook key, or any name, date of birth, SSN, phone, email, address, licence or MRN of the imported file."""

from __future__ import annotations

import csv
import io
import logging
import re
import time
import traceback

import pytest
import requests

from bulkimport.normalize import (
    normalize_address_line,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_ssn,
    parse_dob_text,
)
from docqueries.models import DocumentQuery, QueryStatus
from tests.helpers.api import Api
from tests.helpers.bulk import read_result, sample_bytes, wait_final
from webhooks.models import MessageStatus, WebhookMessage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def all_logs(caplog):
    """caplog at DEBUG for every logger, including the ones that do not propagate to the root."""
    caplog.set_level(logging.DEBUG)
    patched = []
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger):
            continue
        caplog.set_level(logging.DEBUG, logger=name)
        if not logger.propagate:
            logger.addHandler(caplog.handler)
            patched.append(logger)
    yield caplog
    for logger in patched:
        logger.removeHandler(caplog.handler)


def _record_texts(records: list[logging.LogRecord]) -> list[tuple[str, str]]:
    """(logger, text) of everything a handler or a structured formatter could write out for each record."""
    standard = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
    texts = []
    for record in records:
        parts = [record.getMessage()]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
        parts.extend(f"{key}={value}" for key, value in record.__dict__.items() if key not in standard)
        texts.append((record.name, "\n".join(parts)))
    return texts


def _leaks(records, secrets: dict[str, str], *, words: bool = False) -> list[str]:
    found = []
    labels = list(secrets)
    patterns = [
        re.compile(rf"(?<!\w){re.escape(secrets[label])}(?!\w)" if words else re.escape(secrets[label]))
        for label in labels
    ]
    # Only the values that can match a text are searched (thousands of values times thousands of records
    # took half a minute): a value found as whole words has its first word among the text's words; any value
    # found is a substring of the text.
    by_first_word: dict[str, list[int]] = {}
    always: list[int] = []
    for index, label in enumerate(labels):
        first = re.search(r"\w+", secrets[label])
        (by_first_word.setdefault(first[0], []) if words and first else always).append(index)
    for logger, text in _record_texts(records):
        candidates = [i for i in always if words or secrets[labels[i]] in text]
        if words:
            for word in set(re.findall(r"\w+", text)):
                candidates.extend(by_first_word.get(word, ()))
        for index in sorted(candidates):
            if patterns[index].search(text):
                found.append(f"{labels[index]} in a record of {logger}: {text[:300]!r}")
    return found


def _wait(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_api_and_webhook_keys_are_never_logged(all_logs, customer_api, live_server, tenant, receiver):
    base = live_server.url
    webhook = customer_api.session.post(f"{base}/settings", json={"webhookUrl": f"{receiver.url}/hook"}, timeout=10)
    assert webhook.status_code == 200
    webhook_key = webhook.json()["webhookKey"]
    final = customer_api.run(sample_bytes(40, invalid_ratio=0.2, seed=21))
    assert final["status"] == "completed"
    for path in (
        "/medical/v1/facility",
        "/medical/v1/patient",
        "/medical/v1/patient/bulk",
        "/settings",
        "/settings/webhook",
    ):
        assert customer_api.session.get(f"{base}{path}", timeout=10).status_code == 200
    assert customer_api.session.get(f"{base}/medical/v1/patient/{final['requestId']}", timeout=10).status_code == 404
    # A near-miss key (right prefix, wrong secret) and a garbage one: refused, and not logged either.
    near_miss = tenant.api_key[:-4] + ("AAAA" if not tenant.api_key.endswith("AAAA") else "BBBB")
    for bad in (near_miss, "mbk_not_a_key"):
        assert Api(base, bad).get(final["requestId"]).status_code == 401
    _wait(lambda: not WebhookMessage.objects.filter(customer=tenant.customer, status=MessageStatus.PENDING).exists())

    assert len(all_logs.records) > 20  # the capture works: the flow logged plenty at DEBUG
    secret_part = tenant.api_key.split("_", 2)[2]
    leaks = _leaks(
        all_logs.records,
        {
            "API key": tenant.api_key,
            "API key secret part": secret_part,
            "near-miss key": near_miss,
            "webhook key": webhook_key,
        },
    )
    assert leaks == []


def _phi_of(body: bytes) -> dict[str, str]:
    """Every identifying value of the file, as written and as normalized, labelled for the failure message."""
    values: dict[str, str] = {}
    for number, row in enumerate(csv.DictReader(io.StringIO(body.decode("utf-8"))), start=1):

        def add(label: str, value: str | None, *, min_length: int = 3, number: int = number) -> None:
            value = (value or "").strip()
            if len(value) >= min_length:
                values[f"row {number} {label} {value!r}"] = value

        first, last = row["firstName"], row["lastName"]
        for label, value in (("firstName", first), ("lastName", last)):
            add(label, value)
            add(f"{label} normalized", normalize_name(value))
        add("full name", f"{(first or '').strip()} {(last or '').strip()}")
        add("dob", row["dob"], min_length=6)
        add("dob normalized", parse_dob_text(row["dob"].strip())[0] if row["dob"].strip() else None)
        add("ssn", row["ssn"])
        add("ssn normalized", normalize_ssn(row["ssn"]) if row["ssn"] else None)
        for column in ("phone-1", "phone-2"):
            add(column, row[column], min_length=7)
            add(f"{column} normalized", normalize_phone(row[column]) if row[column] else None)
        add("email", row["email-1"])
        add("email normalized", normalize_email(row["email-1"]) if row["email-1"] else None)
        add("addressLine1", row["addressLine1"], min_length=6)
        add(
            "addressLine1 normalized",
            normalize_address_line(row["addressLine1"]) if row["addressLine1"] else None,
            min_length=6,
        )
        add("addressLine2", row["addressLine2"], min_length=4)
        add("driversLicense", row["driversLicenseNo"])
        add("externalId (MRN)", row["externalId"])
    return values


def test_an_import_logs_no_phi(all_logs, customer_api, tenant, receiver):
    assert (
        customer_api.session.post(
            f"{customer_api.base_url}/settings", json={"webhookUrl": f"{receiver.url}/hook"}, timeout=10
        ).status_code
        == 200
    )
    body = sample_bytes(300, invalid_ratio=0.2, seed=8)
    final = customer_api.run(body)
    assert final["status"] == "completed" and final["successful"] > 0 and final["failed"] > 0
    result = read_result(final["result"])
    assert len(result) == 300
    # Let the tail of the flow log too: Document Queries of the created patients and every webhook.
    _wait(lambda: not DocumentQuery.objects.filter(status=QueryStatus.PROCESSING).exists())
    _wait(lambda: not WebhookMessage.objects.filter(customer=tenant.customer, status=MessageStatus.PENDING).exists())
    wait_final(final["requestId"])

    names = {logger for logger, _ in _record_texts(all_logs.records)}
    assert any(name.startswith("dramatiq") for name in names) and any(name.startswith("botocore") for name in names)
    phi = _phi_of(body)
    assert len(phi) > 1000
    leaks = _leaks(all_logs.records, phi, words=True)
    assert leaks == [], f"{len(leaks)} PHI values in logs, e.g. {leaks[:5]}"


def test_a_failing_request_logs_no_phi(all_logs, customer_api):
    """Failures are where values leak (exception messages quoting input): a broken file and broken rows."""
    body = sample_bytes(30, invalid_ratio=0.5, seed=9)
    broken = body + b'Zebedeus,Quarrington,1980-01-02,F,"unterminated'
    final = customer_api.run(broken)
    assert final["status"] == "failed" and final["reason"]
    requests.get(
        f"{customer_api.base_url}/medical/v1/patient/not-a-uuid", headers=customer_api.session.headers, timeout=10
    )
    phi = {**_phi_of(body), "name in the broken line": "Zebedeus", "last name in the broken line": "Quarrington"}
    leaks = _leaks(all_logs.records, phi, words=True)
    assert leaks == [], leaks[:5]


def test_the_leak_detector_finds_a_planted_value():
    """Guards the tests above against passing vacuously."""
    phi = _phi_of(sample_bytes(5, invalid_ratio=0.0, seed=8))
    label, value = next(iter(phi.items()))
    planted = logging.makeLogRecord({"name": "planted", "msg": "row failed: %s", "args": (value,)})
    assert _leaks([planted], {label: value}, words=True) == [
        f"{label} in a record of planted: {planted.getMessage()!r}"
    ]
    assert label in _leaks([planted], phi, words=True)[0]
    in_extra = logging.makeLogRecord({"name": "planted", "msg": "ok", "patient": {"ssn": value}})
    assert _leaks([in_extra], {label: value}, words=True)
    in_traceback = logging.makeLogRecord({"name": "planted", "msg": "boom", "exc_text": f"ValueError: {value}"})
    assert _leaks([in_traceback], {label: value}, words=True)
