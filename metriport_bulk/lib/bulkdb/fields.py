"""What both stores need to know of a model's columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import models


def model_fields(model: type[models.Model], names: Sequence[str]) -> list[models.Field[Any, Any]]:
    """The concrete fields of `names` (field names or attnames such as `request_id`)."""
    fields = []
    for name in names:
        field = model._meta.get_field(name)
        assert isinstance(field, models.Field), f"{model.__name__}.{name} is not a concrete field"
        fields.append(field)
    return fields


def column_of(field: models.Field[Any, Any]) -> str:
    """The database column of a concrete field."""
    assert field.column is not None, f"{field} has a column"
    return field.column
