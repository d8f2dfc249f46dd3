"""JSON error envelopes on every path but the admin's pages (SPEC §1), for what DRF's handler never sees."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from metriport_bulk.api.errors import envelope, is_admin_path

# The local upload URL streams its body to storage under its own limit (BULK_MAX_FILE_BYTES).
STREAMED_PATHS = ("/uploads/",)
# Headers that still mean something once an error page becomes an envelope.
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
GENERIC_DETAILS = {
    400: "Bad request.",
    403: "Forbidden.",
    404: "No such resource.",
    413: "The request body is too large.",
    500: "An unexpected error occurred. It has been logged.",
}


class JsonErrorsMiddleware:
    """Refuses an oversized API body with 413 before anything reads it, and turns any non-JSON error answer
    outside the admin (Django's 405 of a plain view, an HTML error page) into the envelope."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_admin_path(request.path_info):
            return self.get_response(request)
        refused = self._refuse_oversized_body(request)
        if refused is not None:
            return refused
        response = self.get_response(request)
        if response.status_code >= 400 and not _is_json(response) and not response.streaming:
            return self._as_envelope(request, response)
        return response

    def _refuse_oversized_body(self, request: HttpRequest) -> JsonResponse | None:
        if request.path_info.startswith(STREAMED_PATHS):
            return None
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        length = request.META.get("CONTENT_LENGTH") or ""
        if limit is None or not length.isdigit() or int(length) <= limit:
            return None
        detail = f"The request body is {int(length):,} bytes, above the {limit:,}-byte limit of this API."
        return JsonResponse(envelope(413, detail), status=413)

    def _as_envelope(self, request: HttpRequest, response: HttpResponse) -> JsonResponse:
        status = response.status_code
        if status == 405:
            detail = f"{request.method} is not allowed here."
        else:
            detail = GENERIC_DETAILS.get(status, "The request could not be handled.")
        answer = JsonResponse(envelope(status, detail), status=status)
        for header in KEPT_HEADERS:
            if header in response:
                answer[header] = response[header]
        return answer


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip() == "application/json"
