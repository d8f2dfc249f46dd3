"""The CSV format page, the template and `validate_csv` follow the code: docs/csv-format.md is what the code
generates, every code, column and field has a meaning, every documented name is read as documented, the
template is a valid file, and `validate_csv` prints the service's own row errors and writes nothing."""

import csv
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from bulkimport.csv_format import (
    DOCS_PATH,
    FIELD_VALUES,
    FILE_ERROR_MEANINGS,
    RESULT_COLUMN_MEANINGS,
    ROW_ERROR_MEANINGS,
    check_template_is_valid,
    csv_format_sections,
    render_markdown,
    template_csv,
)
from bulkimport.models import BulkRow
from bulkimport.validation import CsvImport
from metriport_bulk.lib.csvio import RESULT_COLUMNS, FileErrorCode
from patients.header import INDEXED_COLUMN_NAMES, SINGLE_COLUMN_NAMES, build_column_plan
from patients.validation import RowErrorCode
from tests.helpers.bulk import result_rows, run_bulk, sample_bytes

ROOT = Path(__file__).resolve().parents[2]


def test_the_checked_in_page_is_what_the_code_generates():
    written = (ROOT / DOCS_PATH).read_text(encoding="utf-8")
    assert written == render_markdown(csv_format_sections()), "run `manage.py csv_format_docs`"


def test_the_check_option_fails_on_a_stale_page(tmp_path):
    stale = tmp_path / "csv-format.md"
    stale.write_text("# CSV format\n")
    with pytest.raises(CommandError, match="csv_format_docs"):
        call_command("csv_format_docs", "--check", "--output", str(stale))
    call_command("csv_format_docs", "--output", str(stale))
    call_command("csv_format_docs", "--check", "--output", str(stale))


def test_every_code_column_and_field_has_a_meaning():
    assert [c for c in RowErrorCode if c not in ROW_ERROR_MEANINGS] == []
    assert [c for c in FileErrorCode if c not in FILE_ERROR_MEANINGS] == []
    assert [c for c in RESULT_COLUMNS if c not in RESULT_COLUMN_MEANINGS] == []
    assert [f for f in [*SINGLE_COLUMN_NAMES, *INDEXED_COLUMN_NAMES] if f not in FIELD_VALUES] == []


def test_the_page_lists_every_code_and_column():
    page = render_markdown(csv_format_sections())
    for code in [*RowErrorCode, *FileErrorCode]:
        assert f"| `{code}` |" in page
    for column in RESULT_COLUMNS:
        assert f"| `{column}` |" in page
    for names in [*SINGLE_COLUMN_NAMES.values(), *INDEXED_COLUMN_NAMES.values()]:
        for name in names:
            assert f"`{name}`" in page


def _plan_field_positions(header: list[str]) -> dict[str, int | None]:
    plan = build_column_plan(header)
    return {
        "externalId": plan.external_id,
        "ssn": plan.ssn,
        "driversLicense": plan.drivers_license,
        "driversLicenseState": plan.drivers_license_state,
        "hieOptOut": plan.hie_opt_out,
        "gender": plan.gender,
        "addressLine1": plan.addresses[0].address_line1,
        "addressLine2": plan.addresses[0].address_line2,
        "zip": plan.addresses[0].zip,
    }


@pytest.mark.parametrize(
    ("field", "alias"),
    [(f, n) for f, names in SINGLE_COLUMN_NAMES.items() for n in names[1:]]
    + [(f, n) for f, names in INDEXED_COLUMN_NAMES.items() for n in names[1:] if f not in ("phone", "email")],
)
def test_every_documented_alias_is_read_as_its_column(field, alias):
    header = next(csv.reader(io.StringIO(template_csv())))
    canonical = header.index({**SINGLE_COLUMN_NAMES, **INDEXED_COLUMN_NAMES}[field][0])
    header[canonical] = alias
    assert _plan_field_positions(header)[field] == canonical


def test_the_template_is_a_valid_file_with_every_column():
    check_template_is_valid()
    header = next(csv.reader(io.StringIO(template_csv())))
    plan = build_column_plan(header)
    assert plan.warnings == ()
    assert all(position is not None for position in _plan_field_positions(header).values())
    assert len(list(CsvImport(io.BytesIO(template_csv().encode())).rows())) == 2


def test_generate_sample_csv_writes_the_template(tmp_path, capsys):
    target = tmp_path / "template.csv"
    call_command("generate_sample_csv", "--template", "-o", str(target))
    assert target.read_text(encoding="utf-8") == template_csv()
    call_command("generate_sample_csv", "--template")
    assert capsys.readouterr().out == template_csv()
    with pytest.raises(CommandError, match="--rows"):
        call_command("generate_sample_csv")


@pytest.mark.django_db
def test_the_template_endpoint_needs_a_key_and_serves_the_template(api, client):
    assert client.get("/medical/v1/patient/bulk/template").status_code == 401
    response = api.get("/medical/v1/patient/bulk/template")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="' in response["Content-Disposition"]
    assert response.content.decode() == template_csv()


@pytest.mark.django_db
def test_the_template_is_in_the_openapi_schema(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/medical/v1/patient/bulk/template"]["get"]
    assert "text/csv" in operation["responses"]["200"]["content"]
    assert "/docs/csv-format" in schema["info"]["description"]


@pytest.mark.django_db
def test_the_served_page_renders_the_same_sections(client):
    response = client.get("/docs/csv-format")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    for section in csv_format_sections():
        assert f'id="{section.anchor}"' in page and f"<h2>{section.title}</h2>" in page
    for code in RowErrorCode:
        assert f"<code>{code}</code>" in page
    for column in RESULT_COLUMNS:
        assert f"<code>{column}</code>" in page
    assert client.post("/docs/csv-format").status_code == 405


def test_validate_csv_touches_no_database_and_writes_no_file(tmp_path, settings, capsys):
    # No django_db mark: any database access fails the test. Storage goes to an empty directory.
    settings.MEDIA_ROOT = str(tmp_path / "files")
    source = tmp_path / "patients.csv"
    source.write_bytes(sample_bytes(300, invalid_ratio=0.1))
    with pytest.raises(CommandError, match="rows would fail"):
        call_command("validate_csv", str(source))
    out = capsys.readouterr().out
    assert "300 rows" in out and "(spreadsheet line " in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["patients.csv"]


def test_validate_csv_reports_a_file_error_with_its_code(tmp_path):
    source = tmp_path / "semicolons.csv"
    source.write_text("firstName;lastName\nJane;Doe\n")
    with pytest.raises(CommandError, match=r"file error \[\w+\]"):
        call_command("validate_csv", str(source))


def test_validate_csv_passes_a_valid_file(tmp_path, capsys):
    source = tmp_path / "template.csv"
    source.write_text(template_csv())
    call_command("validate_csv", str(source))
    assert "2 rows, 2 valid, 0 failed" in capsys.readouterr().out


@pytest.mark.django_db
def test_validate_csv_prints_the_row_errors_the_service_reports(tenant, tmp_path, capsys):
    body = sample_bytes(200, invalid_ratio=0.2, seed=7)
    request = run_bulk(tenant, body, dry_run=True)
    service = {
        row.number: row.reason
        for row in BulkRow.objects.filter(request_id=request.id, status="failed").order_by("number")
    }
    assert len(service) > 10
    source = tmp_path / "patients.csv"
    source.write_bytes(body)
    with pytest.raises(CommandError):
        call_command("validate_csv", str(source))
    printed = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("row "):
            label, _, rest = line.partition("): ")
            printed[int(label.split()[1].replace(",", ""))] = rest.rsplit(" [", 1)[0]
    assert printed == service
    failed_in_result = [r["reason"] for r in result_rows(request.id) if r["status"] == "failed"]
    assert failed_in_result == list(service.values())
