"""Cursor pagination in Metriport's list shape: {"meta": {"itemsOnPage", "nextPage"}, "<items>": [...]}."""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist, ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as BadRequest
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.response import Response

INVALID_CURSOR = "The cursor is not valid: use the nextPage or prevPage URL of a list answer as it is."


class MetriportCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "count"
    max_page_size = 500
    ordering = "-created_at"
    items_key = "items"
    invalid_cursor_message = INVALID_CURSOR

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request) -> Cursor | None:
        """DRF's decoding (a tampered token is refused), then the position checked against the ordering field:
        a position the database cannot compare (a bad date) is the client's error, not a 500."""
        try:
            cursor = super().decode_cursor(request)
        except NotFound:  # DRF answers 404 for a token it cannot read: it is a bad query parameter.
            raise BadRequest({"cursor": INVALID_CURSOR}) from None
        if cursor is None or cursor.position is None:
            return cursor
        try:
            field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
            field.get_prep_value(field.to_python(cursor.position))
        except (FieldDoesNotExist, ValidationError, ValueError, TypeError, OverflowError):
            raise BadRequest({"cursor": INVALID_CURSOR}) from None
        return cursor

    def get_paginated_response(self, data) -> Response:
        return Response(
            {
                "meta": {
                    "itemsOnPage": len(data),
                    "nextPage": self.get_next_link(),
                    "prevPage": self.get_previous_link(),
                },
                self.items_key: data,
            }
        )

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["meta", self.items_key],
            "properties": {
                "meta": {
                    "type": "object",
                    "properties": {
                        "itemsOnPage": {"type": "integer"},
                        "nextPage": {"type": "string", "nullable": True, "format": "uri"},
                        "prevPage": {"type": "string", "nullable": True, "format": "uri"},
                    },
                },
                self.items_key: schema,
            },
        }


def paginator_for(items_key: str, ordering: str = "-created_at") -> type[MetriportCursorPagination]:
    return type(
        f"{items_key.title()}Pagination", (MetriportCursorPagination,), {"items_key": items_key, "ordering": ordering}
    )
