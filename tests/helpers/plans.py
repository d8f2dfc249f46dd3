"""EXPLAIN a store's own statements: `explained` stands in for a store module's bound_cursor, so a call of the
store's function EXPLAINs what it would execute instead of running it (or, with `analyze`, runs it under
EXPLAIN ANALYZE) and hands over the plans."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from metriport_bulk.lib.bulkdb.postgres import bound_cursor


class _ExplainCursor:
    """Stands in for bound_cursor's cursor: EXPLAINs what the store would execute; the store reads no rows."""

    def __init__(self, cursor: Any, explain: str) -> None:
        self.cursor = cursor
        self.explain = explain
        self.plans: list[str] = []

    def execute(self, sql: str, params: Any = None) -> None:
        self.cursor.execute(f"{self.explain} {sql}", params)
        self.plans.append("\n".join(line for (line,) in self.cursor.fetchall()))

    def fetchall(self) -> list[Any]:
        return []

    def fetchone(self) -> None:
        return None


@contextmanager
def explained(monkeypatch: pytest.MonkeyPatch, module: Any, *, analyze: bool = False) -> Iterator[list[str]]:
    """The plans of the statements `module`'s functions execute inside the block, in order."""
    explain = "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)" if analyze else "EXPLAIN"
    plans: list[str] = []

    @contextmanager
    def explain_cursor() -> Iterator[_ExplainCursor]:
        with bound_cursor() as cursor:
            wrapper = _ExplainCursor(cursor, explain)
            yield wrapper
            plans.extend(wrapper.plans)

    monkeypatch.setattr(module, "bound_cursor", explain_cursor)
    yield plans
