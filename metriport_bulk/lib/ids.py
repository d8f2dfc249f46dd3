from __future__ import annotations

import uuid


def as_uuid(value: object) -> uuid.UUID | None:
    """The UUID `value` spells, or None (ids from URLs and command lines are untrusted text)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
