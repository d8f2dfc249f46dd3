"""The `Idempotency-Key` header in the views: parse it, run the call once per key, render the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions
from rest_framework.response import Response

from idempotency.services import IdempotencyKeyInvalid, IdempotencyKeyReused, idempotency_key_parse, idempotent_call
from metriport_bulk.api.errors import UnprocessableEntity
from patients.models import Customer

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

IDEMPOTENCY_KEY = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    description="Optional, 1-255 visible ASCII characters (a UUID is a good key), per customer. A retry with "
    "the same key and parameters within 24 h answers the first call's outcome (same request or patient, "
    f"header `{REPLAYED_HEADER}: true`) instead of doing it again; the same key with other parameters is a "
    "422. Only a successful answer is remembered.",
)


def idempotent_answer(
    request: Any,
    *,
    customer: Customer,
    operation: str,
    parameters: Any,
    run: Callable[[], tuple[str, int]],
    render: Callable[[str, int], Response],
) -> Response:
    """`run` does the work and answers (resource id, HTTP status); `render` builds the answer of a resource
    id, for the first call and for every replay alike."""
    try:
        key = idempotency_key_parse(request.headers.get(HEADER))
    except IdempotencyKeyInvalid as exc:
        raise exceptions.ValidationError({HEADER: str(exc)}) from None
    if key is None:
        return render(*run())
    try:
        outcome = idempotent_call(customer=customer, key=key, operation=operation, parameters=parameters, run=run)
    except IdempotencyKeyReused as exc:
        raise UnprocessableEntity(str(exc)) from None
    response = render(outcome.resource_id, outcome.status_code)
    if outcome.replayed:
        response[REPLAYED_HEADER] = "true"
    return response
