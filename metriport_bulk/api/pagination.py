"""Cursor pagination in Metriport's list shape: {"meta": {"itemsOnPage", "nextPage"}, "<items>": [...]}."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


class MetriportCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "count"
    max_page_size = 500
    ordering = "-created_at"
    items_key = "items"

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
