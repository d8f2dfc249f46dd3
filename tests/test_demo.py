"""The README's main command runs the whole flow on the embedded default (SQLite, local files, in-process
worker) in a clean environment: no PostgreSQL, Redis or S3 settings."""

import os
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
    result = Path(next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("result CSV:")))
    assert result.is_file() and result.read_text().count("\n") == 301
    assert (tmp_path / "metriport-bulk.sqlite3").is_file()
