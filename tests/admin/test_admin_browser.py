"""The support workflow in a real browser (the system Chromium, driven by Playwright): find why a row failed,
and reprocess failed rows as an operator. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import os

import pytest
from django.db import connections
from playwright.sync_api import Page, expect, sync_playwright

from bulkimport.models import BulkRequest, BulkRow, BulkRowError, RowStatus
from tests.helpers.admin import PASSWORD, make_staff
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.helpers.bulk import run_bulk, sample_bytes
from tests.helpers.factories import make_tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert os.path.exists(CHROMIUM), "install the system Chromium: apt-get install -y chromium"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(15_000)
        yield context.new_page()
        # While Playwright's loop runs, Django keeps this thread's connection in a context variable (asgiref):
        # close it here, where it is visible, or it outlives the test and blocks dropping the test database.
        connections.close_all()
        context.close()
        browser.close()


@pytest.fixture
def bulk_request(broker) -> BulkRequest:
    """A completed request of 300 rows (about a fifth invalid), processed inline by the services."""
    return run_bulk(make_tenant("Acme Health"), sample_bytes(300, invalid_ratio=0.2, seed=5))


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("metriport-bulk support")


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_support_finds_why_a_row_failed(page, live_server, bulk_request, support_group):
    make_staff("support", groups=(support_group,))
    log_in(page, live_server.url, "support")

    page.goto(f"{live_server.url}/admin/bulkimport/bulkrequest/")
    page.click(f"text={str(bulk_request.id)[:8]}…")
    expect(page.locator("#bulk-progress")).to_have_attribute("value", "100")
    expect(page.locator(".bulk-status")).to_have_text("completed")
    shot(page, "01-support-bulk-request")

    # Counts by error code: open the rows of the most frequent code.
    first_code = page.locator("#bulk-error-counts a.error-code-link").first
    code = first_code.get_attribute("data-code")
    first_code.click()
    expected = sorted(
        BulkRowError.objects.filter(request=bulk_request, code=code).values_list("row_number", flat=True).distinct()
    )
    # Each row is labelled with its spreadsheet line too: "27 (line 28)".
    labels = page.locator("#result_list tbody th a").all_inner_texts()
    numbers = [int(text.split()[0].replace(",", "")) for text in labels]
    assert labels and all(label.endswith(f"(line {n + 1:,})") for label, n in zip(labels, numbers, strict=True))
    assert numbers == expected[: len(numbers)] and numbers
    expect(page.locator("#changelist-filter")).to_contain_text(code)
    shot(page, "02-support-rows-by-error-code")

    # Open the first of those rows: raw and normalized side by side, the error next to its column.
    page.locator("#result_list tbody th a").first.click()
    row = BulkRow.objects.get(request=bulk_request, number=numbers[0])
    table = page.locator("#row-side-by-side")
    expect(table).to_be_visible()
    expect(page.locator("#row-side-by-side thead")).to_contain_text("Raw (as received)")
    expect(page.locator("#row-side-by-side thead")).to_contain_text("Normalized")
    expect(page.locator("#row-errors")).to_contain_text(code)
    expect(page.locator("#row-side-by-side tbody tr").first.locator("th")).to_have_text("externalId")
    expect(page.locator("#row-side-by-side tbody tr").first.locator("td.raw")).to_have_text(row.raw[0])
    shot(page, "03-support-row-side-by-side")

    # A valid row shows its normalized values next to the raw ones; "Go to row" finds it by number.
    valid = BulkRow.objects.filter(request=bulk_request, status=RowStatus.SUCCEEDED).order_by("number").first()
    page.goto(f"{live_server.url}/admin/bulkimport/bulkrequest/{bulk_request.id}/change/")
    page.fill("#bulk-row-number", str(valid.number))
    page.click("#bulk-find-row input[type=submit]")
    dob = page.locator("#row-side-by-side tbody tr", has=page.locator("th", has_text="dob"))
    expect(dob.locator("td.raw")).to_have_text(valid.raw[3])
    expect(dob.locator("td.normalized")).to_have_text(valid.normalized["dob"])
    shot(page, "04-support-valid-row-side-by-side")

    # Support is read-only: no action buttons.
    page.goto(f"{live_server.url}/admin/bulkimport/bulkrequest/{bulk_request.id}/change/")
    expect(page.locator("#bulk-reprocess-failed")).to_have_count(0)


def test_operator_reprocesses_failed_rows(page, live_server, bulk_request):
    # What a fixed normalizer bug looks like: a valid row stored as failed.
    broken = BulkRow.objects.filter(request=bulk_request, status=RowStatus.SUCCEEDED).order_by("number").first()
    BulkRow.objects.filter(id=broken.id).update(status=RowStatus.FAILED, action="", patient=None, reason="bug")
    make_staff("operator", superuser=True)
    log_in(page, live_server.url, "operator")

    page.goto(f"{live_server.url}/admin/bulkimport/bulkrequest/{bulk_request.id}/change/")
    page.click("#bulk-reprocess-failed")
    success = page.locator(".messagelist .success")
    expect(success).to_contain_text(f"Bulk request {bulk_request.id} reprocessed")
    expect(success).to_contain_text("applied 1")
    shot(page, "05-operator-reprocessed-failed-rows")
    broken.refresh_from_db()
    assert broken.status == RowStatus.SUCCEEDED and broken.patient_id is not None
