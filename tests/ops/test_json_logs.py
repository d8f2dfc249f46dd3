"""LOG_FORMAT=json: one JSON object per line, and a logged exception keeps its frames and type but not its
message (which could hold PHI), as in the plain format."""

from __future__ import annotations

import json
import logging

from metriport_bulk.logging import JsonFormatter, RedactExceptionMessages


def test_json_lines_with_redacted_exceptions():
    record = logging.LogRecord("bulkimport.services", logging.ERROR, __file__, 1, "request %s failed", ("r-1",), None)
    demographics = "Jane Doe 1980-02-03"
    try:
        raise ValueError(demographics)
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactExceptionMessages().filter(record)
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "bulkimport.services"
    assert entry["message"] == "request r-1 failed" and entry["time"].endswith("Z")
    assert "ValueError: <message redacted>" in entry["exception"]
    assert "Jane" not in line and "\n" not in line


def test_log_format_is_validated(monkeypatch):
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='metriport_bulk.settings'; django.setup()",
        ],
        env={"LOG_FORMAT": "xml", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "LOG_FORMAT must be plain or json" in done.stderr
