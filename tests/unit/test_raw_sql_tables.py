"""Each app's raw SQL names only its own tables: another app's table is reached through its model
(`Model._meta.db_table`) or a fragment the owning app supplies, never by a name spelled out in a string. A
rename of another app's table (or a `db_table`) then cannot leave a statement pointing at nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from django.apps import apps

ROOT = Path(__file__).resolve().parents[2]


def _tables_by_app() -> dict[str, set[str]]:
    tables: dict[str, set[str]] = {}
    for model in apps.get_models(include_auto_created=True):
        tables.setdefault(model._meta.app_label, set()).add(model._meta.db_table)
    return tables


def _literals(path: Path) -> list[tuple[int, str]]:
    """The text of every string literal of a module (an f-string's literal parts joined), with its line."""
    found = []
    tree = ast.parse(path.read_text(), filename=str(path))
    parts = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(part.value for part in node.values if isinstance(part, ast.Constant))
            found.append((node.lineno, text))
    return found


def foreign_table_names(app: str, tables: dict[str, set[str]], files: list[Path]) -> list[str]:
    """`file:line: table` for each other app's table named in a string of `app`'s modules. A table name must
    stand alone (`patients_patient`, not `admin:patients_patient_changelist`, an admin URL name)."""
    foreign = sorted(table for owner, names in tables.items() if owner != app for table in names)
    if not foreign:
        return []
    pattern = re.compile(r"(?<![\w:])(" + "|".join(map(re.escape, foreign)) + r")(?!\w)")
    return [
        f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{line}: {match}"
        for path in files
        for line, text in _literals(path)
        for match in pattern.findall(text)
    ]


def _app_files(app: str) -> list[Path]:
    config = apps.get_app_config(app)
    return [path for path in Path(config.path).rglob("*.py") if "migrations" not in path.parts]


def test_no_app_names_another_apps_table_in_a_string() -> None:
    tables = _tables_by_app()
    ours = [config.label for config in apps.get_app_configs() if Path(config.path).parent == ROOT]
    assert {"bulkimport", "patients", "docqueries", "webhooks"} <= set(ours)
    offenders = [found for app in ours for found in foreign_table_names(app, tables, _app_files(app))]
    assert not offenders, "other apps' tables named in raw SQL: " + "; ".join(offenders)


def test_the_check_finds_a_join_on_another_apps_table_by_name(tmp_path: Path) -> None:
    """The failure mode: bulkimport's result query joining patients' table by its name."""
    (tmp_path / "store.py").write_text(
        'SQL = """SELECT r.id FROM bulkimport_bulkrow AS r\\n  LEFT JOIN patients_patient AS p ON p.id = r.patient_id"""\n'
        'URL = "admin:patients_patient_changelist"\n'
        'OK = f"SELECT 1 FROM {TABLE} AS p"\n'
    )
    found = foreign_table_names(
        "bulkimport", {"bulkimport": {"bulkimport_bulkrow"}, "patients": {"patients_patient"}}, [tmp_path / "store.py"]
    )
    assert [entry.rsplit(": ", 1)[1] for entry in found] == ["patients_patient"]
