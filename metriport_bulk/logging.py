"""Logging guards: exception messages can carry data (a value echoed by a library, a query parameter), so
logged tracebacks keep their frames and type but drop the message; and no line carries a capability: a signed
token (our upload and local download URLs, `/uploads/bulk/<token>`, `/files/<token>`, the admin's staged
imports) or an S3 pre-signed URL's signature is replaced by `[redacted]` wherever it appears in a message. A
working link replayed from a log would hand out a result file with names, dates of birth and SSNs.

Pure: no Django import, so gunicorn's logger class (metriport_bulk.ops.access_log) uses it too."""

from __future__ import annotations

import json
import logging
import re
import time
import traceback

REDACTED = "[redacted]"
# django.core.signing's `payload:timestamp:signature` (payload base64url, `.`-prefixed when compressed).
_SIGNED_TOKEN = re.compile(r"\.?[A-Za-z0-9_-]{10,}:[A-Za-z0-9_-]{4,}:[A-Za-z0-9_-]{20,}")
# An S3 pre-signed URL's credentials (SigV4 and SigV2 query parameters).
_S3_SIGNATURE = re.compile(
    r"((?:X-Amz-Signature|X-Amz-Security-Token|X-Amz-Credential|Signature|AWSAccessKeyId)=)[^&\s\"']+",
    re.IGNORECASE,
)


def redact_tokens(text: str) -> str:
    """`text` with every signed token and S3 signature replaced by [redacted]."""
    if ":" in text:
        text = _SIGNED_TOKEN.sub(REDACTED, text)
    if "=" in text:
        text = _S3_SIGNATURE.sub(lambda match: match.group(1) + REDACTED, text)
    return text


class RedactTokens(logging.Filter):
    """Rewrites a record's message (arguments merged in) without its tokens; every handler of ours has it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


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
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        http = getattr(record, "http", None)  # the gunicorn access log's fields (metriport_bulk.ops.access_log)
        if isinstance(http, dict):
            entry["http"] = http
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
