"""The README stays a guide that tells the truth: every environment variable the code reads is in its
configuration table, every document it links exists, and it stays short (detail goes to docs/)."""

import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def configuration_section() -> str:
    return README.split("## Configuration", 1)[1].split("\n## ", 1)[0]


def test_every_environment_variable_read_by_the_code_is_in_the_configuration_table():
    read = set(re.findall(r'env(?:_bool|_int)?\("([A-Z0-9_]+)"', (ROOT / "metriport_bulk/settings.py").read_text()))
    read |= set(re.findall(r'os\.environ\.get\("([A-Z0-9_]+)"', (ROOT / "deploy/gunicorn.conf.py").read_text()))
    read.discard("TEST_DATABASE_NAME")  # test-only, described under the table
    assert len(read) > 40  # the patterns still find the settings
    table = configuration_section()
    missing = sorted(name for name in read if f"`{name}`" not in table)
    assert not missing, f"not in the README's configuration table: {missing}"


def test_every_linked_document_exists():
    links = re.findall(r"\]\(((?:docs/)[^)#]+)\)", README)
    assert {"docs/architecture.md", "docs/benchmarks.md", "docs/operations.md"} <= set(links)
    assert [link for link in links if not (ROOT / link).is_file()] == []


def test_the_readme_is_a_guide_not_a_lab_notebook():
    assert len(README.splitlines()) < 400
    assert "## Benchmarks" not in README  # in docs/benchmarks.md


def test_the_csv_example_of_the_readme_is_a_valid_file():
    from bulkimport.validation import CsvImport

    section = README.split("## CSV format", 1)[1].split("\n## ", 1)[0]
    example = section.split("```csv\n", 1)[1].split("```", 1)[0]
    rows = list(CsvImport(io.BytesIO(example.encode())).rows())
    assert rows and all(row.valid for row in rows)
