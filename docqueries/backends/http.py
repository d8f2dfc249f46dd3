"""The http backend: POSTs each query to the network gateway at settings.DOCQUERY_GATEWAY_URL.

Request: `{"requestId", "customerId", "patient": {"id", "externalId", "firstName", "lastName", "dob",
"genderAtBirth", "address": [...]}}` (the demographics a network needs to find the patient; the gateway is
the operator's own service, so this is the one place they leave the service on purpose).

Answers: 200 `{"status": "completed", "documents": [...]}` finishes the query (document metadata only is
kept); 200 `{"status": "processing", "retryAfter": s}` or 202 (+ Retry-After) asks to poll again;
200 `{"status": "failed"}` fails it; 429, 5xx, timeouts and connection errors are retried with backoff by
the caller; any other status fails the query. Redirects are not followed.
"""

from __future__ import annotations

import requests
from django.conf import settings

from docqueries.backends.base import Completed, Pending, PermanentError, QueryInput, TransientError, document_metadata
from metriport_bulk.lib.http import USER_AGENT

DEFAULT_POLL_SECONDS = 5.0
MAX_RETRY_AFTER_SECONDS = 3600.0


def _retry_after(response: requests.Response, payload: dict | None = None) -> float | None:
    value = (payload or {}).get("retryAfter") if isinstance(payload, dict) else None
    if value is None:
        value = response.headers.get("retry-after")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS) if value is not None else None
    except (TypeError, ValueError):
        return None


class HttpGatewayBackend:
    name = "http"
    rate_limited = True
    set_based = False  # one gateway call per query, each under the customer's rate limit

    def first_step_after(self) -> float:
        return 0.0  # the gateway is called at once

    def run_many(self, queries: list[QueryInput]) -> list[Completed | Pending]:
        raise NotImplementedError("the gateway is called per query")

    def __init__(self, session: requests.Session | None = None) -> None:
        self.session = session or requests.Session()

    def run(self, query: QueryInput) -> Completed | Pending:
        url = settings.DOCQUERY_GATEWAY_URL
        if not url:
            raise PermanentError("DOCQUERY_GATEWAY_URL is not configured")
        body = {"requestId": query.request_id, "customerId": query.customer_id, "patient": query.demographics}
        try:
            response = self.session.post(
                url,
                json=body,
                headers={"user-agent": USER_AGENT, "x-request-id": query.request_id},
                timeout=settings.DOCQUERY_GATEWAY_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise TransientError(f"gateway timeout after {settings.DOCQUERY_GATEWAY_TIMEOUT_SECONDS:g}s") from exc
        except requests.RequestException as exc:
            raise TransientError(f"gateway connection error ({type(exc).__name__})") from exc
        code = response.status_code
        if code == 429 or code >= 500:
            raise TransientError(f"gateway answered HTTP {code}", retry_after=_retry_after(response))
        if code == 202:
            return Pending(retry_after=_retry_after(response) or DEFAULT_POLL_SECONDS)
        if code != 200:
            raise PermanentError(f"gateway answered HTTP {code}")
        try:
            payload = response.json()
        except ValueError as exc:
            raise TransientError("gateway answered with invalid JSON") from exc
        if not isinstance(payload, dict):
            raise TransientError("gateway answered with an unexpected JSON shape")
        status = payload.get("status", "completed")
        if status == "processing":
            return Pending(retry_after=_retry_after(response, payload) or DEFAULT_POLL_SECONDS)
        if status == "failed":
            raise PermanentError("the network reported the query as failed")
        documents = [doc for doc in map(document_metadata, payload.get("documents") or []) if doc is not None]
        return Completed(documents=documents)
