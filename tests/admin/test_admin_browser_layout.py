"""In the system Chromium at a 1,280 px wide window (issue 25): the bulk request list shows its progress column
whole (bar and percentage on one line, inside the window), and a request's page has one "Files" section."""

from __future__ import annotations

import os

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from bulkimport.models import BulkRequest
from tests.helpers.admin import PASSWORD, make_staff
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
from tests.helpers.bulk import run_bulk, sample_bytes
from tests.helpers.factories import make_tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH = 1280


@pytest.fixture
def page(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert os.path.exists(CHROMIUM), "install the system Chromium: apt-get install -y chromium"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": WIDTH, "height": 900})
        context.set_default_timeout(15_000)
        yield context.new_page()
        connections.close_all()
        context.close()
        browser.close()


@pytest.fixture
def bulk_request(broker) -> BulkRequest:
    return run_bulk(make_tenant("Acme Health Partners of Springfield"), sample_bytes(60, invalid_ratio=0.2, seed=5))


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("metriport-bulk support")


def test_the_progress_column_is_whole_at_1280_px(page, live_server, bulk_request, support_group):
    make_staff("support", groups=(support_group,))
    log_in(page, live_server.url, "support")
    page.goto(f"{live_server.url}/admin/bulkimport/bulkrequest/")
    cell = page.locator("#result_list tbody td.field-progress").first
    expect(cell).to_contain_text("100%")
    page.screenshot(path=str(SCREENSHOTS / "20-bulk-request-list-1280.png"), full_page=True)
    content = cell.locator(".bulk-list-progress")
    content_box, bar_box = content.bounding_box(), cell.locator("progress").bounding_box()
    visible = page.locator("#changelist .results").bounding_box()
    assert content_box and bar_box and visible
    # Bar and percentage on one line (the span is one line high), the cell inside the list's visible part
    # (no scrolling sideways to see it), the bar wide enough to read.
    line_height = page.evaluate("(e) => parseFloat(getComputedStyle(e).lineHeight) || 20", content.element_handle())
    assert content_box["height"] < 1.8 * line_height, f"the progress cell wraps: {content_box}"
    assert content_box["x"] + content_box["width"] <= visible["x"] + visible["width"]
    assert bar_box["width"] >= 60


def test_a_request_page_has_one_files_section(page, live_server, bulk_request, support_group):
    make_staff("support", groups=(support_group,))
    log_in(page, live_server.url, "support")
    page.goto(f"{live_server.url}/admin/bulkimport/bulkrequest/{bulk_request.id}/change/")
    page.screenshot(path=str(SCREENSHOTS / "21-bulk-request-files-1280.png"), full_page=True)
    headings = [text.strip() for text in page.locator("h2").all_inner_texts()]
    assert headings.count("Files") == 1, headings
    files = page.locator("#bulk-files")
    expect(files).to_contain_text("Download input CSV")
    expect(files).to_contain_text("Download result CSV")
    expect(files).to_contain_text(f"{bulk_request.input_size:,} bytes")
