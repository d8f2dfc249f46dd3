"""The bulk limits can be raised to 1,000,000 rows / 500 MB (issue 24) and no further: a process with a limit
outside the supported range refuses to start (system check error, clear reason); inside it, the configured
limit is the one a file is held to (a smaller override proves the same path without a 1M-row file)."""

from __future__ import annotations

import io

import pytest
from django.core.checks import run_checks

from bulkimport.validation import CsvImport
from metriport_bulk.lib.csvio import CsvFileError, FileErrorCode
from tests.helpers.bulk import sample_bytes

OURS = {"metriport_bulk.E001", "metriport_bulk.E002"}


def limit_errors() -> dict[str, str]:
    return {message.id: message.msg for message in run_checks() if message.id in OURS}


def test_defaults_are_metriports_and_pass(settings):
    assert (settings.BULK_MAX_ROWS, settings.BULK_MAX_FILE_BYTES) == (100_000, 50 * 1024 * 1024)
    assert limit_errors() == {}


def test_one_million_rows_and_500_mb_are_accepted(settings):
    settings.BULK_MAX_ROWS = 1_000_000
    settings.BULK_MAX_FILE_BYTES = 500 * 1024 * 1024
    assert limit_errors() == {}


@pytest.mark.parametrize(
    ("rows", "size", "refused", "reason"),
    [
        (1_000_001, 50 * 1024 * 1024, "metriport_bulk.E001", "BULK_MAX_ROWS=1,000,001 is outside the supported range"),
        (0, 50 * 1024 * 1024, "metriport_bulk.E001", "BULK_MAX_ROWS=0 is outside the supported range"),
        (100_000, 500 * 1024 * 1024 + 1, "metriport_bulk.E002", "BULK_MAX_FILE_BYTES=524,288,001 is outside"),
    ],
)
def test_limits_beyond_the_supported_range_are_refused_with_a_reason(settings, rows, size, refused, reason):
    settings.BULK_MAX_ROWS = rows
    settings.BULK_MAX_FILE_BYTES = size
    errors = limit_errors()
    assert set(errors) == {refused}
    assert errors[refused].startswith(reason), errors[refused]


def test_a_raised_row_limit_takes_exactly_that_many_rows():
    """Limit N takes N rows and refuses N+1 with a reason naming N (the parse's own check, any N)."""
    limit = 120
    rows = list(CsvImport(io.BytesIO(sample_bytes(limit, invalid_ratio=0.0)), max_rows=limit, max_bytes=1 << 29).rows())
    assert len(rows) == limit
    with pytest.raises(CsvFileError) as refused:
        list(
            CsvImport(io.BytesIO(sample_bytes(limit + 1, invalid_ratio=0.0)), max_rows=limit, max_bytes=1 << 29).rows()
        )
    assert refused.value.code == FileErrorCode.TOO_MANY_ROWS
    assert "more than 120 patient rows" in str(refused.value)
