"""Logging guards: exception messages can carry data (a value echoed by a library, a query parameter), so
logged tracebacks keep their frames and type but drop the message."""

from __future__ import annotations

import json
import logging
import time
import traceback


class RedactExceptionMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc_type, _, tb = record.exc_info
            frames = "".join(traceback.format_tb(tb))
            record.exc_text = f"Traceback (most recent call last):\n{frames}{exc_type.__module__}.{exc_type.__qualname__}: <message redacted>"
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """LOG_FORMAT=json: one object per line, times in UTC. The exception, when there is one, is the redacted
    traceback text RedactExceptionMessages left (frames and type, no message)."""

    # A plain function here, as in the logging docs: mypy takes it for a method and drops its argument.
    converter = time.gmtime  # type: ignore[assignment]

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
