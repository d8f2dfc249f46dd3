"""The README's main command runs the whole flow on the embedded default (SQLite, local files, in-process
worker) in a clean environment: no PostgreSQL, Redis or S3 settings."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_end_to_end_on_the_embedded_default(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "BROKER_URL", "S3_", "TEST_", "DRAMATIQ_"))
    }
    env.update(
        DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="metriport_bulk.settings", DOCQUERY_SANDBOX_DELAY_SECONDS="0.1"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "demo", "--rows", "300"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    assert "status:     completed" in out
    assert "rows:       300 total" in out
    assert "bulk statuses processing -> completed; signatures verified" in out
    # It ends clean: its webhooks delivered (waited for with a progress bar), delivery stopped before the
    # receiver, and nothing but progress bars on stderr (no log, warning or error line).
    assert "not delivered yet" not in out
    assert not [
        line
        for line in out.splitlines()
        if re.search(r"^\d{4}-\d\d-\d\d |Traceback|(?i:warning)|attempt \d+ failed|refused|did not", line)
    ]
    noise = [
        line
        for line in done.stderr.replace("\r", "\n").splitlines()
        if line.strip() and not re.match(r"(processing|webhooks): ", line)
    ]
    assert noise == []
    result = Path(next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("result CSV:")))
    assert result.is_file() and result.read_text().count("\n") == 301
    assert (tmp_path / "metriport-bulk.sqlite3").is_file()


def _clean_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "BROKER_URL", "S3_", "TEST_", "DRAMATIQ_", "STATIC_ROOT"))
    }
    env.update(DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="metriport_bulk.settings")
    return env


def test_commands_start_without_startup_noise(tmp_path):
    """No "AXES: BEGIN" line and no WhiteNoise "No directory at …/static/" warning, on a fresh data directory."""
    for command in (["check"], ["generate_sample_csv", "--template"], ["migrate", "--noinput", "-v0"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=_clean_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "AXES" not in done.stdout + done.stderr
        assert "No directory at" not in done.stdout + done.stderr
        assert done.stderr == "", command
    client = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.test import Client; "
            "print(Client().get('/healthz').status_code)",
        ],
        cwd=ROOT,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert client.stdout.strip() == "200" and "No directory at" not in client.stderr, client.stderr


def test_serve_starts_without_a_warning(tmp_path):
    """`manage.py serve` (what `make serve` runs) on a fresh data directory: no warning line, no static-root
    warning, no AXES line; it answers /healthz."""
    import socket
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # As `make serve` does: migrate, then serve.
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=_clean_env(tmp_path),
        check=True,
        timeout=120,
    )
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env={**_clean_env(tmp_path), "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, log.read_text()
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = log.read_text()
    assert "Starting development server" in text
    assert not re.search(r"(?i)warning|AXES|No directory at|Traceback", text), text
