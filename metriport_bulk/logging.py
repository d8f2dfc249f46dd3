"""Logging guards: exception messages can carry data (a value echoed by a library, a query parameter), so
logged tracebacks keep their frames and type but drop the message."""

from __future__ import annotations

import logging
import traceback


class RedactExceptionMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc_type, _, tb = record.exc_info
            frames = "".join(traceback.format_tb(tb))
            record.exc_text = f"Traceback (most recent call last):\n{frames}{exc_type.__module__}.{exc_type.__qualname__}: <message redacted>"
            record.exc_info = None
        return True
