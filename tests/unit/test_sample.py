"""devtools.sample: seeded synthetic demographics for demos and benchmarks."""

from __future__ import annotations

import collections
import csv
import io
import itertools

import pytest

from bulkimport.validation import CsvImport
from devtools.sample import (
    INVALID_KINDS,
    SAMPLE_HEADER,
    sample_rows,
    sample_rows_with_truth,
    write_sample_csv,
)

COLUMN = {name: i for i, name in enumerate(SAMPLE_HEADER)}


def test_same_seed_gives_the_same_rows_and_another_seed_does_not() -> None:
    assert list(sample_rows(300, seed=7)) == list(sample_rows(300, seed=7))
    assert list(sample_rows(300, seed=7)) != list(sample_rows(300, seed=8))


def test_rows_are_generated_lazily() -> None:
    rows = sample_rows(10**9)  # would never finish if materialized
    assert len(list(itertools.islice(rows, 5))) == 5


def test_zero_invalid_ratio_gives_only_valid_rows() -> None:
    out = io.BytesIO()
    write_sample_csv(out, 2000, invalid_ratio=0.0, seed=3)
    out.seek(0)
    results = list(CsvImport(out).rows())
    assert len(results) == 2000
    invalid = [(r.number, [e.message for e in r.errors]) for r in results if not r.valid]
    assert invalid == []


def test_every_row_marked_invalid_fails_validation_and_every_other_row_passes() -> None:
    truth = list(sample_rows_with_truth(5000, invalid_ratio=0.2, seed=11))
    out = io.BytesIO()
    write_sample_csv(out, 5000, invalid_ratio=0.2, seed=11)
    out.seek(0)
    results = list(CsvImport(out).rows())
    # Cells past the header are not kept (the result file never has them); everything else is as written.
    assert [r.raw for r in results] == [row[: len(SAMPLE_HEADER)] for row, _ in truth]
    mismatched = [(kind, r.raw) for r, (_, kind) in zip(results, truth, strict=True) if r.valid != (kind is None)]
    assert mismatched == []


def test_invalid_share_is_close_to_the_ratio_and_varied() -> None:
    kinds = collections.Counter(kind for _, kind in sample_rows_with_truth(20_000, invalid_ratio=0.05, seed=1))
    invalid = 20_000 - kinds.pop(None)
    assert 800 < invalid < 1200
    assert set(kinds) == set(INVALID_KINDS)  # every way of breaking a row shows up


def test_invalid_ratio_must_be_a_share() -> None:
    with pytest.raises(ValueError):
        list(sample_rows(1, invalid_ratio=1.5))


def test_write_sample_csv_writes_header_and_crlf_rows_and_leaves_the_stream_open() -> None:
    out = io.BytesIO()
    write_sample_csv(out, 50, seed=2)
    assert not out.closed
    data = out.getvalue()
    assert data.count(b"\r\n") >= 51
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert rows[0] == SAMPLE_HEADER
    assert len(rows) == 51


def test_identifiers_can_never_be_real() -> None:
    # Fictional phone range 555-0100..0199, reserved example.* domains, never-issued SSN areas 900-999.
    for row, _ in sample_rows_with_truth(3000, invalid_ratio=0.0, seed=5):
        for column in ("phone-1", "phone-2"):
            digits = "".join(c for c in row[COLUMN[column]] if c.isdigit())
            if digits:
                assert digits[-7:-2] == "55501"
        email = row[COLUMN["email-1"]].lower()
        if email:
            assert email.rsplit("@", 1)[1] in ("example.com", "example.org", "example.net")
        ssn = row[COLUMN["ssn"]]
        if ssn:
            assert ssn[0] == "9"


def test_data_is_realistically_messy() -> None:
    rows = [row for row, _ in sample_rows_with_truth(5000, invalid_ratio=0.0, seed=9)]
    dobs = [row[COLUMN["dob"]] for row in rows]
    assert any("/" in dob for dob in dobs) and any("-" in dob for dob in dobs)
    assert any(row[COLUMN["firstName"]].isupper() for row in rows)
    assert any("-" in row[COLUMN["zip"]] for row in rows)  # ZIP+4
    assert any(len(row[COLUMN["zip"]]) == 4 for row in rows)  # leading zero lost in a spreadsheet
    assert any(len(row[COLUMN["state"]]) > 2 for row in rows)  # state names
    assert any(row[COLUMN["addressLine2"]] for row in rows)
    assert any(row[COLUMN["hieOptOut"]] in ("true", "yes") for row in rows)
    assert any(row[COLUMN["driversLicenseNo"]] for row in rows)
    assert len({row[COLUMN["state"]].upper()[:2] for row in rows}) > 20
