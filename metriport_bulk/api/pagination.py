"""Cursor pagination in Metriport's list shape: {"meta": {"itemsOnPage", "nextPage"?, "prevPage"?}, "<items>":
[...]}. `nextPage`/`prevPage` are URLs to follow as they are (an opaque cursor inside); Metriport's own
`fromItem=<id>` (the page starting at that item) and `toItem=<id>` (the page ending at it) are read too, with
`count` as the page size."""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist, ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as BadRequest
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from metriport_bulk.lib.ids import as_uuid

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
        self._item_links: tuple[str | None, str | None] | None = None
        from_item, to_item = request.query_params.get("fromItem"), request.query_params.get("toItem")
        if from_item and to_item:
            raise BadRequest({"fromItem": "Give fromItem or toItem, not both."})
        if from_item or to_item:
            return self._item_page(queryset, request, from_item=from_item, to_item=to_item)
        return super().paginate_queryset(queryset, request, view)

    def _item_page(self, queryset, request, *, from_item: str | None, to_item: str | None) -> list:
        """Metriport's fromItem/toItem: the `count` items from (or up to) the given item, in list order."""
        name = "fromItem" if from_item else "toItem"
        ordering = (self.ordering,) if isinstance(self.ordering, str) else tuple(self.ordering)
        field = ordering[0].lstrip("-")
        descending = ordering[0].startswith("-")
        anchor_id = as_uuid(from_item or to_item)
        anchor = queryset.filter(pk=anchor_id).values_list(field, flat=True).first() if anchor_id else None
        if anchor is None:
            raise BadRequest({name: "No item with this id in the list."})
        size = self.get_page_size(request)
        assert size is not None  # page_size is set
        after, before = ("lte", "gt") if descending else ("gte", "lt")
        ordered = queryset.order_by(*ordering, "-pk" if descending else "pk")
        if from_item:
            items = list(ordered.filter(**{f"{field}__{after}": anchor})[: size + 1])
            following, items = items[size:], items[:size]
            preceding = ordered.filter(**{f"{field}__{before}": anchor}).reverse()[:1]
        else:
            backwards = ordered.filter(**{f"{field}__{'gte' if descending else 'lte'}": anchor}).reverse()
            items = list(backwards[: size + 1])[::-1]
            preceding, items = items[:-size][-1:], items[-size:]
            following = ordered.filter(**{f"{field}__{'lt' if descending else 'gt'}": anchor})[:1]
        url = remove_query_param(remove_query_param(request.build_absolute_uri(), "fromItem"), "toItem")
        url = remove_query_param(url, self.cursor_query_param)
        next_link = replace_query_param(url, "fromItem", following[0].pk) if following else None
        prev_link = replace_query_param(url, "toItem", list(preceding)[0].pk) if preceding else None
        self._item_links = (next_link, prev_link)
        return items

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
        next_link, prev_link = self._item_links or (self.get_next_link(), self.get_previous_link())
        meta: dict = {"itemsOnPage": len(data)}
        # Optional strings in Metriport's schema: omitted when there is no such page, never null.
        if next_link:
            meta["nextPage"] = next_link
        if prev_link:
            meta["prevPage"] = prev_link
        return Response({"meta": meta, self.items_key: data})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["meta", self.items_key],
            "properties": {
                "meta": {
                    "type": "object",
                    "properties": {
                        "itemsOnPage": {"type": "integer"},
                        "nextPage": {"type": "string", "format": "uri"},
                        "prevPage": {"type": "string", "format": "uri"},
                    },
                },
                self.items_key: schema,
            },
        }


def paginator_for(items_key: str, ordering: str = "-created_at") -> type[MetriportCursorPagination]:
    return type(
        f"{items_key.title()}Pagination", (MetriportCursorPagination,), {"items_key": items_key, "ordering": ordering}
    )
