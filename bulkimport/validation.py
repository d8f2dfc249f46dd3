"""Bulk Patient Create file validation: the streaming CsvImport reads one uploaded CSV (encoding, size, row
and column limits, our own result columns and formula escapes of a file uploaded again) and validates each
row by the patient row rules (patients.validation).

Pure Python, no Django. Nothing here logs, and no exception or message carries a cell value: cells are PHI.
"""

from __future__ import annotations

import datetime
import typing
from collections.abc import Iterator

from metriport_bulk.lib.csvio import (
    MAX_FILE_BYTES,
    MAX_ROWS,
    RESULT_COLUMNS,
    CsvFileError,
    CsvReader,
    FileErrorCode,
    unescape_cell,
)
from patients.header import ColumnPlan, build_column_plan
from patients.normalize import clean_text
from patients.validation import RowError, RowErrorCode, RowResult, RowValidator, row_reason

__all__ = [
    "ColumnPlan",
    "CsvFileError",
    "CsvImport",
    "FileErrorCode",
    "RowResult",
    "Segment",
    "build_column_plan",
    "row_and_line",
    "row_label",
    "row_reason",
]

# Metriport's columns (10 address groups, 10 phones, 10 emails, ...) are under 100; the rest is kept room
# for customers' own columns, while a header of a million commas cannot blow up every result row.
MAX_COLUMNS = 500
_RESULT_NAMES = frozenset(name.lower() for name in RESULT_COLUMNS)


def row_label(number: int) -> str:
    """A data row as everything shown to people names it: its number and the line a spreadsheet shows it on
    (the header is line 1, so row 27 is on line 28)."""
    return f"row {number:,} (spreadsheet line {number + 1:,})"


def row_and_line(number: int) -> str:
    """The compact form of row_label, for tables whose column says "Row (spreadsheet line)": "27 (line 28)"."""
    return f"{number:,} (line {number + 1:,})"


class Segment(typing.NamedTuple):
    """Rows first_number..last_number of a file: its bytes [start, end), after the header's."""

    first_number: int
    last_number: int
    start: int
    end: int


def _is_blank(row: list[str]) -> bool:
    return not row or not clean_text("".join(row)).strip()


class CsvImport:
    """One uploaded CSV: the header is read and checked on construction, rows are streamed by rows().

    Construction raises CsvFileError (EMPTY_FILE, BINARY_FILE, ENCODING, NO_HEADER, MISSING_COLUMNS,
    DUPLICATE_COLUMNS, TOO_LARGE, MALFORMED). rows() may raise CsvFileError mid-stream (TOO_MANY_ROWS,
    TOO_LARGE, BINARY_FILE, ENCODING, MALFORMED); the caller must then fail the whole request.
    Blank lines (every cell empty or spaces) are skipped and not counted as rows.
    """

    def __init__(
        self,
        stream: typing.BinaryIO,
        *,
        max_rows: int = MAX_ROWS,
        max_bytes: int = MAX_FILE_BYTES,
        today: datetime.date | None = None,
        first_number: int = 1,
        track_offsets: bool = False,
    ) -> None:
        self._reader = CsvReader(stream, max_bytes=max_bytes, track_offsets=track_offsets)
        self._source = iter(self._reader)
        self._max_rows = max_rows
        self._first_number = first_number
        self._started = False

        header = self._next_non_blank()
        if header is None:
            raise CsvFileError(FileErrorCode.EMPTY_FILE, "The file is empty: it has no header and no rows.")
        # With track_offsets: where the data rows start (a segment's stream is these bytes, then its rows').
        self.header_end = self._reader.offset
        # Spreadsheets pad headers with empty cells; they name nothing and must not widen the result file.
        while len(header) > 1 and not header[-1].strip():
            header.pop()
        if len(header) > MAX_COLUMNS:
            raise CsvFileError(
                FileErrorCode.TOO_MANY_COLUMNS,
                f"The header has {len(header):,} columns, above the {MAX_COLUMNS} limit: remove unused columns.",
            )
        # A result file of ours uploaded again (fixed, or as it is): our result columns are ignored, so the
        # new result file has the customer's columns once and our own columns once. Our file of failed rows
        # (GET `invalid`) ends with a `reason` column: ignored as well.
        # Ours are the result names from the last metriportId on: the customer's own facilityId column (a
        # result column's name too) comes before them and is kept.
        names = [cell.strip().lower() for cell in header]
        if {"metriportid", "status", "reason"} <= set(names):
            start = len(names) - 1 - names[::-1].index("metriportid")
            self._ours = {i for i, name in enumerate(names) if name in _RESULT_NAMES and i >= start}
        elif names and names[-1] == "reason":
            self._ours = {len(names) - 1}
        else:
            self._ours = set()
        if self._ours:
            header = [cell for i, cell in enumerate(header) if i not in self._ours]
        self.header: list[str] = header
        self.plan = build_column_plan(header)
        self._validator = RowValidator(self.plan, today=today or datetime.date.today())
        # Read ahead one row so a header-only file fails now, before anything is processed.
        self._first_row = self._next_non_blank()
        if self._first_row is None:
            raise CsvFileError(FileErrorCode.EMPTY_FILE, "The file has a header but no patient rows.")

    def _next_non_blank(self) -> list[str] | None:
        for row in self._source:
            if not _is_blank(row):
                return row
        return None

    @property
    def bytes_read(self) -> int:
        """Bytes of the upload consumed so far (for progress bars)."""
        return self._reader.bytes_read

    @property
    def offset(self) -> int:
        """With `track_offsets`: the stream's bytes up to the end of the last row read (a row boundary)."""
        return self._reader.offset

    def rows(self) -> Iterator[RowResult]:
        """The data rows, in order, validated and normalized. Single pass."""
        self._start()
        return self._rows()

    def segments(self, rows_per_segment: int) -> list[Segment]:
        """The file cut into runs of `rows_per_segment` data rows (the last one shorter), structure only: every
        file-level check of rows() runs (CsvFileError), no row is validated. Needs `track_offsets`.

        Each segment's bytes, after the header's (`header_end`), read by a CsvImport of `first_number` give
        exactly its rows, numbered as rows() numbers them. Single pass, instead of rows()."""
        self._start()
        segments: list[Segment] = []
        start = self.header_end
        first = number = self._first_number - 1
        for number, _row, _cells in self._numbered():
            if number - first == rows_per_segment:
                end = self._reader.offset
                segments.append(Segment(first + 1, number, start, end))
                first, start = number, end
        if number > first:
            segments.append(Segment(first + 1, number, start, self._reader.offset))
        return segments

    def _start(self) -> None:
        if self._started:
            raise RuntimeError("A CsvImport's rows can only be read once")
        self._started = True

    def _numbered(self) -> Iterator[tuple[int, list[str], list[str]]]:
        """The data rows, in order, as (number, cells without our own columns, the cells validation sees):
        blank rows skipped, the row limit checked."""
        max_rows = self._max_rows
        number = self._first_number - 1
        pending = self._first_row
        self._first_row = None
        source = self._source
        row: list[str] | None
        while True:
            if pending is not None:
                row, pending = pending, None
            else:
                row = next(source, None)
                if row is None:
                    return
            if self._ours:
                ours = self._ours
                row = [cell for i, cell in enumerate(row) if i not in ours]
            joined = "".join(row)
            if self._ours and "'" in joined:
                # A file of ours: our formula-escape prefix (ResultCsvWriter) comes off, `'+1 602 555 0140` is a
                # phone again. A customer's own file keeps its cells exactly as written (`'+X1` stays `'+X1`).
                row = [unescape_cell(cell) for cell in row]
                joined = "".join(row)
            if joined.isascii():
                cells_seen = row
            else:
                # Validation and matching see every cell Unicode-cleaned (NFC, no zero-width characters or
                # stray BOMs); the row itself is kept as received for the result file.
                cells_seen = [clean_text(cell) for cell in row]
                joined = "".join(cells_seen)
            if not joined.strip():
                continue
            number += 1
            if number > max_rows:
                raise CsvFileError(
                    FileErrorCode.TOO_MANY_ROWS,
                    f"The file has more than {max_rows:,} patient rows; split it into files of at most "
                    f"{max_rows:,} rows.",
                )
            yield number, row, cells_seen

    def _rows(self) -> Iterator[RowResult]:
        validate = self._validator.validate
        width = self.plan.width
        for number, row, cells_seen in self._numbered():
            cells = len(row)
            if cells == width or (cells > width and not "".join(cells_seen[width:]).strip()):
                # Extra cells that are all empty (trailing commas from a spreadsheet) lose nothing.
                normalized, errors = validate(cells_seen)
            elif cells < width:
                normalized = None
                errors = [
                    RowError(
                        RowErrorCode.TOO_FEW_CELLS,
                        "row",
                        f"Row has {cells} cells but the header has {width} (a line break inside an unquoted "
                        "field splits a row)",
                    )
                ]
            else:
                normalized = None
                errors = [
                    RowError(
                        RowErrorCode.TOO_MANY_CELLS,
                        "row",
                        f"Row has {cells} cells but the header has {width} (a comma inside an unquoted "
                        "field; quote such fields)",
                    )
                ]
            # Cells past the header's width are never written to the result file; dropping them here keeps a
            # row of a million trailing commas from being held (and stored) a million cells wide.
            yield RowResult(number, row if cells <= width else row[:width], normalized, errors)
