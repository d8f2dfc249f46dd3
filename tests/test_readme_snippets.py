"""Every snippet of the README's API section runs as it is written there, unchanged, against a live server,
with only what the README tells the reader to set (`KEY`, `FACILITY`, `BASE`, a `patients.csv`) in its
environment: the bulk flow by hand (bash and curl), the Python SDK and the JavaScript SDK snippets.
docs/quickstart.sh, which the section points to, is run by tests/test_quickstart.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers.bulk import sample_bytes

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "tests" / "contract"


def api_section_blocks() -> list[tuple[str, str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## API examples\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def test_the_api_section_holds_the_bulk_flow_and_one_snippet_per_sdk():
    assert [language for language, _ in api_section_blocks()] == ["sh", "python", "js"]


def _env(live_server, tenant) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update(KEY=tenant.api_key, BASE=live_server.url)
    return env


def test_the_python_snippet_runs_as_written(live_server, tenant, tmp_path):
    (code,) = [code for language, code in api_section_blocks() if language == "python"]
    script = tmp_path / "quickstart.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], env=_env(live_server, tenant), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.fullmatch(r"patient \S+: \d+ patients, Document Query \w+\n", done.stdout), done.stdout
    assert done.stderr == ""


def test_the_javascript_snippet_runs_as_written(live_server, tenant):
    assert shutil.which("node"), "node is required (as for the contract tests)"
    assert (CONTRACT / "node_modules" / "@metriport" / "api-sdk").is_dir(), "run: npm ci --prefix tests/contract"
    (code,) = [code for language, code in api_section_blocks() if language == "js"]
    # Beside the pinned SDK's node_modules, as `npm install` in the reader's directory would put it.
    script = CONTRACT / f".readme-snippet-{uuid.uuid4().hex}.mjs"
    script.write_text(code)
    try:
        done = subprocess.run(
            ["node", str(script)], env=_env(live_server, tenant), capture_output=True, text=True, timeout=120
        )
    finally:
        script.unlink()
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.fullmatch(r"patient \S+ is now Smith: \d+ patients, query \w+\n", done.stdout), done.stdout
    assert done.stderr == ""


def test_the_bulk_flow_by_hand_runs_as_written(live_server, tenant, pipeline, settings, tmp_path):
    # The embedded default's local upload URL (signed, served by this live server).
    settings.PUBLIC_BASE_URL = live_server.url
    settings.S3_BUCKET = ""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": tmp_path}},
    }
    (code,) = [code for language, code in api_section_blocks() if language == "sh"]
    work = tmp_path / "reader"
    work.mkdir()
    (work / "patients.csv").write_bytes(sample_bytes(40, invalid_ratio=0.1))
    env = {**_env(live_server, tenant), "FACILITY": str(tenant.facility.id)}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert '"status":"completed"' in done.stdout and '"total":40' in done.stdout
    result = (work / "result.csv").read_text().splitlines()
    header = result[0].split(",")
    assert len(result) == 41 and {"metriportId", "status", "reason"} <= set(header)
