"""gunicorn's logger class for the web processes (deploy/gunicorn.conf.py: `logger_class`): the access log and
gunicorn's own error lines never carry a signed URL token (metriport_bulk.logging.redact_tokens: the request
line, the path and the referer are redacted), and with LOG_FORMAT=json both are one JSON object per line like
the app's own logs, the access line's fields under `http`.

Imported by gunicorn before Django: standard library, gunicorn and metriport_bulk.logging only."""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]

from metriport_bulk.logging import JsonFormatter, RedactTokens, redact_tokens


class RedactingLogger(Logger):  # type: ignore[misc]  # gunicorn ships no types
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.json = os.environ.get("LOG_FORMAT", "plain").strip().lower() == "json"
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.addFilter(RedactTokens())
                if self.json:
                    handler.setFormatter(JsonFormatter())

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        return {key: redact_tokens(value) if isinstance(value, str) else value for key, value in atoms.items()}

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.json:
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        status = str(atoms["s"])
        fields = {
            "remote": atoms["h"],
            "method": atoms["m"],
            "path": atoms["U"],  # never the query string
            "status": int(status) if status.isdigit() else status,
            "bytes": atoms["B"],
            "duration_ms": atoms["M"],
        }
        try:
            self.access_log.info("%s %s %s", atoms["m"], atoms["U"], status, extra={"http": fields})
        except Exception:  # noqa: BLE001 - as gunicorn's own access(): a log line never fails a request
            self.error("access log line failed")
