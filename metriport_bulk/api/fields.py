"""Serializer fields shared by the apps' JSON bodies."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

# The message names what is accepted and never echoes what was sent (a body's other fields can hold PHI, and one
# rule for all messages is simpler to keep than a judgement per field).
JSON_BOOLEAN_MESSAGE = "Must be a JSON boolean: true or false."


class StrictBooleanField(serializers.BooleanField):
    """A JSON body's boolean: `true` or `false` and nothing else.

    DRF's BooleanField also reads "yes", "on", "1", "true", 1 and 0 as booleans and, when nullable, "null" and ""
    as null; Metriport's zod schemas refuse all of them and its SDKs send real booleans, so a client relying on
    them would break against Metriport. A subclass, so the OpenAPI schema still types the field `boolean`.
    Query-string booleans are strings and are read where they are used (`true`/`false`)."""

    default_error_messages = {"invalid": JSON_BOOLEAN_MESSAGE, "null": JSON_BOOLEAN_MESSAGE}
    default_empty_html = serializers.empty  # never read a missing form field as false

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid")
