"""Every snippet of the README's API section runs as it is written there: the shell block is
docs/quickstart.sh (run from a fresh clone by tests/test_quickstart.py), and the Python and JavaScript blocks
are run here, unchanged, against a live server, with only what the README tells the reader to set (`KEY`,
`BASE`) in their environment."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "tests" / "contract"


def api_section_blocks() -> list[tuple[str, str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## API examples\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def test_the_api_section_holds_the_script_and_one_snippet_per_sdk():
    blocks = api_section_blocks()
    assert [language for language, _ in blocks] == ["sh", "python", "js"]
    assert blocks[0][1].strip() == (ROOT / "docs" / "quickstart.sh").read_text().strip()


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
