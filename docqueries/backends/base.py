"""What a backend receives and answers. A backend call is one step: it either finishes the query
(`Completed`), asks to be called again later (`Pending`, e.g. the network is still answering), or raises
`TransientError` (retried with backoff) or `PermanentError` (the query fails)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

DOCUMENT_FIELDS = ("id", "fileName", "contentType", "size", "description")


@dataclass(frozen=True)
class QueryInput:
    request_id: str
    customer_id: str
    patient_id: str
    external_id: str
    started_at: datetime
    attempt: int  # 1 for the first call
    # Demographics for a real network (the http gateway needs them to find the patient); never logged.
    demographics: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Completed:
    documents: list[dict]


@dataclass(frozen=True)
class Pending:
    retry_after: float  # seconds


class TransientError(Exception):
    """Worth retrying (5xx, 429, timeout, connection error). `retry_after` when the server said so."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Retrying cannot help (the gateway refused the request)."""


class Backend(Protocol):
    name: str
    # Calls go to a shared external service and count against the per-customer rate limit.
    rate_limited: bool
    # Answers a whole batch at once with `run_many` (never raises): the service then handles the batch in a
    # few statements instead of one claim, call and finish per query.
    set_based: bool

    def run(self, query: QueryInput) -> Completed | Pending: ...

    def first_step_after(self) -> float:
        """Seconds after its start at which a query's first step is worth running (0: at once)."""
        ...

    def run_many(self, queries: list[QueryInput]) -> list[Completed | Pending]: ...


def document_metadata(raw: dict) -> dict | None:
    """Keeps only a document's metadata fields (whatever else a gateway sends is dropped); None when the
    entry is not a document."""
    if not isinstance(raw, dict) or not raw.get("id"):
        return None
    size = raw.get("size")
    return {
        "id": str(raw["id"]),
        "fileName": str(raw["fileName"]) if raw.get("fileName") is not None else None,
        "contentType": str(raw["contentType"]) if raw.get("contentType") is not None else None,
        "size": int(size) if isinstance(size, int | float) and not isinstance(size, bool) else None,
        "description": str(raw["description"]) if raw.get("description") is not None else None,
    }
