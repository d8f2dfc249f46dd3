"""The app as a newcomer and an operator run it, in processes of their own on the embedded default (a fresh
DATA_DIR, SQLite, no broker, local files): `manage.py serve ADDR:PORT` (what `make serve PORT=` runs) and
gunicorn with deploy/gunicorn.conf.py. In a real browser (the system Chromium) the admin is styled and /docs
renders the Swagger UI with our operations (screenshots in test-artifacts/screenshots/); the upload URL of a
bulk request points at the port actually served."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import sync_playwright

from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def embedded_env(data_dir: Path) -> dict[str, str]:
    """The environment of a fresh install: nothing of the test run's services."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {**keep, "DJANGO_SETTINGS_MODULE": "metriport_bulk.settings", "DATA_DIR": str(data_dir), "DEBUG": "false"}


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Served:
    def __init__(self, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.popen.poll() is None, log.read_text()[-3000:]
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or its first request is slow
                pass
            time.sleep(0.2)
        raise AssertionError(f"{command[1:3]} did not answer /healthz in 60 s:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)
        self._log.close()


def check_in_browser(base_url: str, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(20_000)
            page.goto(f"{base_url}/admin/login/")
            # Django's admin stylesheet gives the header a coloured background; unstyled it is transparent.
            header = page.locator("#header")
            background = header.evaluate("element => getComputedStyle(element).backgroundColor")
            assert background not in ("rgba(0, 0, 0, 0)", "transparent"), background
            page.screenshot(path=str(SCREENSHOTS / f"{name}-admin-login.png"))
            page.goto(f"{base_url}/docs")
            page.locator(".swagger-ui .opblock").first.wait_for()
            assert page.locator(".swagger-ui .opblock").count() > 20  # our operations, rendered
            assert page.get_by_text("/medical/v1/patient/bulk").first.is_visible()
            page.screenshot(path=str(SCREENSHOTS / f"{name}-docs.png"))
        finally:
            browser.close()


def test_serve_follows_its_port_and_serves_styled_pages(tmp_path):
    env = embedded_env(tmp_path / "var")
    manage(env, "migrate", "--noinput")
    onboard = manage(env, "create_customer", "Acme Health", "--with-key")
    fields = dict(line.split("=", 1) for line in onboard.splitlines() if "=" in line)
    manage(
        env, "create_facility", fields["customer_id"], "--name", "Main", "--npi", "1234567893",
        "--address-line1", "1 Main St", "--city", "Springfield", "--state", "IL", "--zip", "62701",
    )  # fmt: skip
    port = free_port()
    served = Served([sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"], env, port, tmp_path / "serve.log")
    try:
        created = requests.post(
            f"{served.url}/medical/v1/patient/bulk", headers={"x-api-key": fields["api_key"]}, timeout=10
        )
        assert created.status_code == 200, created.text
        assert created.json()["uploadUrl"].startswith(f"{served.url}/"), created.json()["uploadUrl"]
        check_in_browser(served.url, "serve")
    finally:
        served.stop()


def test_gunicorn_with_the_config_file_serves_styled_pages(tmp_path):
    assert GUNICORN.exists(), "gunicorn is pinned in requirements.txt"
    port = free_port()
    env = {**embedded_env(tmp_path / "var"), "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
    served = Served(
        [str(GUNICORN), "-c", "deploy/gunicorn.conf.py", "metriport_bulk.wsgi"], env, port, tmp_path / "gunicorn.log"
    )
    try:
        check_in_browser(served.url, "gunicorn")
        assert requests.get(f"{served.url}/static/admin/css/base.css", timeout=10).status_code == 200
        assert '"GET /healthz" 200' in served.log.read_text()  # the access log line of the config file
    finally:
        served.stop()
