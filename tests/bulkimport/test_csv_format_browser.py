"""The CSV format page and the template download in the system Chromium: the page renders every section with
working anchors, its tables list every row error code and result column, and the template downloads (with the
API key the browser sends) byte for byte as generated."""

from __future__ import annotations

import os

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from bulkimport.csv_format import csv_format_sections, template_csv
from metriport_bulk.lib.csvio import RESULT_COLUMNS
from patients.validation import RowErrorCode
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_context(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert os.path.exists(CHROMIUM), "install the system Chromium: apt-get install -y chromium"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        context.set_default_timeout(15_000)
        yield context
        connections.close_all()
        context.close()
        browser.close()


def test_the_csv_format_page_renders_every_section(browser_context, live_server):
    page = browser_context.new_page()
    page.goto(f"{live_server.url}/docs/csv-format")
    expect(page.locator("h1")).to_have_text("CSV format")
    sections = csv_format_sections()
    assert page.locator("main h2").all_inner_texts() == [section.title for section in sections]
    page.screenshot(path=str(SCREENSHOTS / "30-docs-csv-format.png"), full_page=True)
    codes = page.locator("#row-errors table tbody tr td:first-child").all_inner_texts()
    assert codes == [*(str(code) for code in RowErrorCode), "cancelled"]
    columns = page.locator("#result table tbody tr td:first-child").all_inner_texts()
    assert columns == list(RESULT_COLUMNS)
    page.click("nav.toc >> text=Row errors")
    assert page.url.endswith("#row-errors")
    expect(page.locator("#row-errors")).to_be_in_viewport()
    # The API reference links to it.
    page.goto(f"{live_server.url}/docs")
    expect(page.locator("a[href='/docs/csv-format']").first).to_be_visible(timeout=30_000)


def test_the_template_downloads_from_the_page_and_from_the_api(browser_context, live_server, tenant):
    page = browser_context.new_page()
    page.goto(f"{live_server.url}/docs/csv-format#template")
    with page.expect_download() as downloaded:
        page.click("#template-download")
    download = downloaded.value
    assert download.suggested_filename == "metriport-bulk-template.csv"
    assert download.path().read_text(encoding="utf-8") == template_csv()
    # The API's template, as a browser application fetches it: refused without the key, the same bytes with it.
    fetch = """async ([url, key]) => {
        const response = await fetch(url, key ? {headers: {"x-api-key": key}} : {});
        return [response.status, response.headers.get("content-type"), await response.text()];
    }"""
    url = f"{live_server.url}/medical/v1/patient/bulk/template"
    status, _, body = page.evaluate(fetch, [url, ""])
    assert status == 401 and '"status":401' in body.replace(" ", "")
    status, content_type, body = page.evaluate(fetch, [url, tenant.api_key])
    assert status == 200 and content_type.startswith("text/csv") and body == template_csv()
