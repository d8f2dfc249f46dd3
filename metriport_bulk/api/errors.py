"""The JSON error envelope for every error: {"status", "name", "title", "detail"}.

DRF exceptions go through `exception_handler`; Django-level 404/500 (paths outside DRF, unhandled errors) go
through `json_404`/`json_500`, CSRF failures outside the admin through `csrf_failure`, and whatever else answers
an error page outside the admin is rewritten by `middleware.JsonErrorsMiddleware`. No stack trace and no request
data ever reach the body.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)

ERROR_NAMES = {
    400: ("BadRequestError", "Bad request"),
    401: ("UnauthorizedError", "Unauthorized"),
    403: ("ForbiddenError", "Forbidden"),
    404: ("NotFoundError", "Not found"),
    405: ("MethodNotAllowedError", "Method not allowed"),
    406: ("NotAcceptableError", "Not acceptable"),
    409: ("ConflictError", "Conflict"),
    411: ("LengthRequiredError", "Length required"),
    412: ("PreconditionFailedError", "Precondition failed"),
    413: ("PayloadTooLargeError", "Payload too large"),
    415: ("UnsupportedMediaTypeError", "Unsupported media type"),
    422: ("UnprocessableEntityError", "Unprocessable entity"),
    429: ("TooManyRequestsError", "Too many requests"),
    500: ("InternalServerError", "Internal server error"),
}


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = "The If-Match eTag is not the current one: read the object again and retry."
    default_code = "precondition_failed"


class UnprocessableEntity(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request is well-formed but cannot be processed."
    default_code = "unprocessable_entity"


def envelope(status_code: int, detail: str) -> dict:
    name, title = ERROR_NAMES.get(status_code, ("Error", "Error"))
    return {"status": status_code, "name": name, "title": title, "detail": detail}


def flatten_detail(detail, prefix: str = "") -> str:
    """Turns DRF's nested validation detail into one readable sentence naming each field."""
    if isinstance(detail, dict):
        parts = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            full = f"{prefix}.{name}" if prefix and name else (name or prefix)
            parts.append(flatten_detail(value, full))
        return "; ".join(p for p in parts if p)
    if isinstance(detail, list):
        return "; ".join(flatten_detail(item, prefix) for item in detail)
    text = str(detail)
    return f"{prefix}: {text}" if prefix else text


def exception_handler(exc, context) -> Response:
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) if str(exc) else "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        code = exc.status_code
        detail = flatten_detail(exc.detail)
        headers = {}
        auth_header = getattr(exc, "auth_header", None)  # NotAuthenticated, AuthenticationFailed
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)  # Throttled
        if wait:
            headers["Retry-After"] = str(int(wait))
        return Response(envelope(code, detail), status=code, headers=headers)
    # Unhandled: log the type only (the message could hold PHI), answer a generic 500.
    logger.error("unhandled API error %s in %s", type(exc).__name__, context.get("view").__class__.__name__)
    return Response(envelope(500, "An unexpected error occurred. It has been logged."), status=500)


def json_404(request, exception=None) -> JsonResponse:
    return JsonResponse(envelope(404, "No such resource."), status=404)


def json_500(request) -> JsonResponse:
    return JsonResponse(envelope(500, "An unexpected error occurred. It has been logged."), status=500)


def json_400(request, exception=None) -> JsonResponse:
    return JsonResponse(envelope(400, "Bad request."), status=400)


def json_403(request, exception=None) -> JsonResponse:
    return JsonResponse(envelope(403, "Forbidden."), status=403)


def json_405(request, allowed: list[str]) -> JsonResponse:
    response = JsonResponse(
        envelope(405, f"{request.method} is not allowed here: use {', '.join(allowed)}."), status=405
    )
    response["Allow"] = ", ".join(allowed)
    return response


def csrf_failure(request, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the admin keeps Django's page (a browser reads it), every other path an envelope."""
    if is_admin_path(request.path_info):
        from django.views.csrf import csrf_failure as django_csrf_failure

        return django_csrf_failure(request, reason=reason)
    return JsonResponse(
        envelope(403, "CSRF verification failed: API requests authenticate with x-api-key."), status=403
    )


def is_admin_path(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")
