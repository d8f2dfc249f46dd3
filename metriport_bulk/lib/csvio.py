"""Streaming CSV input and result output, independent of Django.

Input: `CsvReader` turns an uploaded byte stream into rows of cells without ever holding the file:
it enforces the byte limit as it reads, refuses binary data and anything but UTF-8 (a UTF-8 BOM is
accepted and stripped), accepts CRLF, LF and CR line endings and quoted fields holding commas or
newlines, and reports a malformed file with the line it started on. Every failure is a
`CsvFileError` whose message a customer can act on and which never quotes file content (PHI).

Output: `ResultCsvWriter` writes the result file (the input columns as received, then
RESULT_COLUMNS) with every cell escaped against spreadsheet formula injection.
"""

from __future__ import annotations

import codecs
import csv
import enum
import io
import typing
from collections.abc import Iterator

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_ROWS",
    "RESULT_COLUMNS",
    "RESULT_STATUS_WORDS",
    "CsvFileError",
    "CsvReader",
    "FileErrorCode",
    "ResultCsvWriter",
    "escape_cell",
    "too_large_message",
    "unescape_cell",
]

# The limits of one upload (SPEC §3); settings.BULK_MAX_ROWS / BULK_MAX_FILE_BYTES default to them.
MAX_ROWS = 100_000
MAX_FILE_BYTES = 50 * 1024 * 1024

RESULT_COLUMNS = (
    "metriportId",
    "status",
    "reason",
    "errorCode",
    "action",
    "matchedPatientId",
    "matchedOn",
    "documentQuery",
    "documents",
    "facilityId",  # last: readers of the columns before it by position keep working
)
# A row's stored status -> the word of the result file: Metriport's importer writes `successful` (its docs say
# `succeeded`; its code, and so every file its customers parse, says `successful`).
RESULT_STATUS_WORDS = {"succeeded": "successful"}

# Big enough that the text layer decodes in few calls, small enough to keep memory flat.
_READ_CHUNK = 64 * 1024
_SNIFF_BYTES = 4096


class FileErrorCode(enum.StrEnum):
    """Why a whole file was refused (the bulk request fails with the error's message)."""

    EMPTY_FILE = "empty_file"
    BINARY_FILE = "binary_file"
    ENCODING = "encoding"
    NO_HEADER = "no_header"
    MISSING_COLUMNS = "missing_columns"
    DUPLICATE_COLUMNS = "duplicate_columns"
    TOO_MANY_ROWS = "too_many_rows"
    TOO_MANY_COLUMNS = "too_many_columns"
    TOO_LARGE = "too_large"
    MALFORMED = "malformed"
    WRONG_DELIMITER = "wrong_delimiter"


class CsvFileError(Exception):
    """A file-level failure. `message` is customer-actionable and holds no cell values."""

    def __init__(self, code: FileErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"CsvFileError({self.code.value!r}, {self.message!r})"


_SAVE_AS_UTF8 = "Save it from your spreadsheet as 'CSV UTF-8 (Comma delimited)' and upload it again."


def _sniff(head: bytes) -> None:
    """Refuse, from the first bytes, what is clearly not a UTF-8 CSV file."""
    if not head:
        raise CsvFileError(FileErrorCode.EMPTY_FILE, "The file is empty.")
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise CsvFileError(FileErrorCode.ENCODING, f"The file is encoded as UTF-32, not UTF-8. {_SAVE_AS_UTF8}")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvFileError(FileErrorCode.ENCODING, f"The file is encoded as UTF-16, not UTF-8. {_SAVE_AS_UTF8}")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0"):
        raise CsvFileError(
            FileErrorCode.BINARY_FILE,
            f"The file is a spreadsheet workbook (Excel .xlsx/.xls), not a CSV file. {_SAVE_AS_UTF8}",
        )
    if head.startswith(b"%PDF"):
        raise CsvFileError(FileErrorCode.BINARY_FILE, "The file is a PDF document, not a CSV file.")
    if b"\x00" in head:
        # UTF-16 without a BOM puts a NUL next to every ASCII character.
        even_nuls = head[0::2].count(0)
        odd_nuls = head[1::2].count(0)
        if max(even_nuls, odd_nuls) * 2 >= len(head) // 2 and min(even_nuls, odd_nuls) * 8 < len(head):
            raise CsvFileError(FileErrorCode.ENCODING, f"The file looks encoded as UTF-16, not UTF-8. {_SAVE_AS_UTF8}")
        raise _binary_error()


def _binary_error() -> CsvFileError:
    return CsvFileError(
        FileErrorCode.BINARY_FILE, "The file contains binary data (NUL bytes); it is not a CSV text file."
    )


def too_large_message(max_bytes: int, *, size: int | None = None) -> str:
    """The one wording of a file above the size limit, with the file's size when it is known."""
    what = f"The file is {_human_size(size)}, above" if size is not None else "The file is above"
    return f"{what} the {_human_bytes(max_bytes)} limit: split it into smaller files."


def _too_large_error(max_bytes: int) -> CsvFileError:
    return CsvFileError(FileErrorCode.TOO_LARGE, too_large_message(max_bytes))


def _human_size(size: int) -> str:
    """A file's size as a customer reads it: 60.2 MB, 3.1 KB, 812 bytes."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size:,} bytes"


def _human_bytes(size: int) -> str:
    if size >= 1024 * 1024 and size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MB"
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KB"
    return f"{size:,} bytes"


def _encoding_error(*, line: int, offset: int) -> CsvFileError:
    return CsvFileError(
        FileErrorCode.ENCODING,
        f"The file is not valid UTF-8: the first byte that is not is on line {line:,} (byte {offset + 1:,} of the "
        f"file); it was probably saved as Latin-1/Windows-1252. {_SAVE_AS_UTF8}",
    )


class _Utf8Check:
    """Checks the bytes handed on, in order, as UTF-8, and knows where the first invalid byte is: its offset in
    the file and its physical line (CRLF, LF and CR each end one), even when a chunk boundary splits a
    character or a CRLF. The text layer decodes whole chunks, so it cannot say either."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._offset = 0  # bytes checked so far
        self._breaks = 0  # line breaks among them
        self._last = b""  # the last byte checked (a CR there and an LF next are one break)

    def feed(self, data: bytes, *, final: bool = False) -> None:
        pending = len(self._decoder.getstate()[0])  # bytes of a character split by the previous chunk
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            start = self._offset - pending + exc.start  # absolute offset of the invalid byte
            before = data[: max(start - self._offset, 0)]
            raise _encoding_error(line=self._breaks + self._count(before) + 1, offset=start) from None
        self._breaks += self._count(data)
        self._offset += len(data)
        self._last = data[-1:] or self._last

    def _count(self, data: bytes) -> int:
        crlf_across = 1 if self._last == b"\r" and data[:1] == b"\n" else 0
        return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n") - crlf_across


class _GuardedRaw(io.RawIOBase):
    """The caller's stream seen through the byte limit, the NUL check and the UTF-8 check, chunk by chunk.

    Closing it never closes the caller's stream: the caller owns that.
    """

    def __init__(self, stream: typing.BinaryIO, head: bytes, max_bytes: int) -> None:
        super().__init__()
        self._stream = stream
        self._pending = head
        self._max_bytes = max_bytes
        self.bytes_read = len(head)
        self._utf8 = _Utf8Check()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: typing.Any) -> int:
        if self._pending:
            data, self._pending = self._pending[: len(buffer)], self._pending[len(buffer) :]
        else:
            data = self._stream.read(len(buffer)) or b""
            self.bytes_read += len(data)
            if self.bytes_read > self._max_bytes:
                raise _too_large_error(self._max_bytes)
            if b"\x00" in data:
                raise _binary_error()
        self._utf8.feed(data, final=not data)
        size = len(data)
        buffer[:size] = data
        return size


def _remaining_size(stream: typing.BinaryIO) -> int | None:
    try:
        if not stream.seekable():
            return None
        position = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(position)
        return end - position
    except (AttributeError, OSError, ValueError):
        return None


def _read_head(stream: typing.BinaryIO, size: int) -> bytes:
    # A socket-like stream may return fewer bytes than asked; sniffing needs a fair sample.
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class CsvReader:
    """Rows (lists of cells) of a UTF-8 CSV byte stream, read lazily in fixed-size chunks.

    Iterating raises CsvFileError for TOO_LARGE, BINARY_FILE, ENCODING and MALFORMED as soon as the
    offending bytes are reached; rows before that point have already been yielded.
    """

    def __init__(self, stream: typing.BinaryIO, *, max_bytes: int, track_offsets: bool = False) -> None:
        size = _remaining_size(stream)
        if size is not None and size > max_bytes:
            raise _too_large_error(max_bytes)
        head = _read_head(stream, _SNIFF_BYTES)
        if len(head) > max_bytes:
            raise _too_large_error(max_bytes)
        _sniff(head)
        self._raw = _GuardedRaw(stream, head, max_bytes)
        # utf-8-sig strips a leading BOM (Excel's "CSV UTF-8") and is plain UTF-8 otherwise;
        # newline="" hands CR, LF and CRLF untranslated to the csv module, which splits on all three.
        self._text = io.TextIOWrapper(
            io.BufferedReader(self._raw, buffer_size=_READ_CHUNK),
            encoding="utf-8-sig",
            errors="strict",
            newline="",
        )
        # The BOM is bytes of the file the text layer never hands on.
        self._offset = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
        # strict: an unterminated or stray quote fails loudly instead of swallowing the following rows.
        self._reader = csv.reader(self._counted(self._text) if track_offsets else self._text, strict=True)

    @property
    def bytes_read(self) -> int:
        """Bytes consumed from the stream so far (for progress reporting)."""
        return self._raw.bytes_read

    @property
    def offset(self) -> int:
        """With `track_offsets`: the bytes of the file up to the end of the last row read, so a row boundary
        (the csv module pulls the lines of one row and no more; a CRLF is one line ending, never split)."""
        return self._offset

    def _counted(self, lines: typing.Iterable[str]) -> Iterator[str]:
        for line in lines:
            self._offset += len(line) if line.isascii() else len(line.encode("utf-8"))
            yield line

    @property
    def line_num(self) -> int:
        """Physical lines read so far."""
        return self._reader.line_num

    def __iter__(self) -> Iterator[list[str]]:
        reader = self._reader
        row_start = 1
        try:
            for row in reader:
                yield row
                row_start = reader.line_num + 1
        except UnicodeDecodeError:
            # Not expected: _GuardedRaw checks every byte before the text layer decodes it, and says where.
            raise CsvFileError(
                FileErrorCode.ENCODING,
                f"The file is not valid UTF-8; it was probably saved as Latin-1/Windows-1252. {_SAVE_AS_UTF8}",
            ) from None
        except csv.Error:
            # The csv module's own message can quote the offending text; ours never does.
            raise CsvFileError(
                FileErrorCode.MALFORMED,
                f"The CSV is malformed at the row starting on line {row_start}: a quoted field is not closed "
                "properly (a stray or missing double quote), or a field is over 128 KB. Double quotes inside "
                'a quoted field must be doubled ("").',
            ) from None


_FORMULA_TRIGGERS = frozenset("=+-@\t\r")


def _escapes(value: str) -> bool:
    """Whether escape_cell prefixes `value`: it starts with = + - @ tab or CR, after any apostrophes. Those
    apostrophes count so that the escape is reversible: `'=F12` (the customer's own quote) becomes `''=F12`,
    never the same cell as `=F12` escaped."""
    return value.lstrip("'")[:1] in _FORMULA_TRIGGERS  # "" (nothing after the apostrophes) is no trigger


def escape_cell(value: str) -> str:
    """Neutralize spreadsheet formula injection: prefix ' when the cell starts with = + - @ tab or CR
    (OWASP CSV injection guidance), after any apostrophes of its own; a spreadsheet then shows the text
    instead of evaluating it. unescape_cell(escape_cell(v)) == v for every v."""
    return "'" + value if _escapes(value) else value


def unescape_cell(cell: str) -> str:
    """Undoes escape_cell: removes one `'` before a cell of apostrophes then = + - @ tab or CR (a name such
    as `'Neil` keeps its apostrophe). Only for files of ours (a result or failed-rows file uploaded again):
    a customer's own cells are kept exactly as written."""
    return cell[1:] if cell[:1] == "'" and _escapes(cell) else cell


class _LineSink:
    """File-like target for csv.writer, which calls write() once per row with the whole row: each row
    goes straight to `out` as UTF-8 with its "\r\n" terminator replaced by "\n"."""

    __slots__ = ("_out",)

    def __init__(self, out: typing.BinaryIO) -> None:
        self._out = out

    def write(self, line: str) -> None:
        self._out.write(line[:-2].encode("utf-8", "replace") + b"\n")


class ResultCsvWriter:
    """Writes the result CSV (UTF-8, no BOM, LF row endings, any cell holding a CR or LF quoted)
    straight to `out`, one row per call.

    Each call writes its own bytes to `out`, so nothing is lost if the caller never flushes this
    object, and memory stays flat however many rows are written.
    """

    def __init__(self, out: typing.BinaryIO, header: list[str], columns: tuple[str, ...] = RESULT_COLUMNS) -> None:
        self._out = out
        self._width = len(header)
        # The csv module quotes a cell holding any character of the line terminator; with "\n" alone
        # it would leave a bare CR unquoted, which readers take for a row break. So rows are formatted
        # with "\r\n" (every CR or LF inside a cell gets quoted) and written with a plain "\n".
        self._writer = csv.writer(_LineSink(out), lineterminator="\r\n")
        self._emit([*header, *columns])

    def _emit(self, cells: list[str]) -> None:
        triggers = _FORMULA_TRIGGERS
        # escape_cell, inlined: this runs for every cell of every row.
        self._writer.writerow(
            [
                ("'" + cell) if cell and (cell[0] in triggers or (cell[0] == "'" and _escapes(cell))) else cell
                for cell in cells
            ]
        )

    def write(
        self,
        raw: list[str],
        *,
        metriport_id: str | None,
        status: str,
        reason: str,
        action: str,
        error_code: str = "",
        matched_patient_id: str = "",
        matched_on: str = "",
        document_query: str = "",
        documents: str = "",
        facility_id: str = "",
    ) -> None:
        """One result line: the row's cells (padded or cut to the header's width so the result
        columns line up), then RESULT_COLUMNS."""
        self.write_cells(
            raw,
            (
                metriport_id or "",
                RESULT_STATUS_WORDS.get(status, status),
                reason,
                error_code,
                action,
                matched_patient_id,
                matched_on,
                document_query,
                documents,
                facility_id,
            ),
        )

    def write_cells(self, raw: list[str], extra: typing.Iterable[str]) -> None:
        """The row's cells fitted to the header's width, then `extra` (the writer's own columns)."""
        width = self._width
        if len(raw) == width:
            cells = list(raw)
        elif len(raw) > width:
            cells = raw[:width]
        else:
            cells = [*raw, *([""] * (width - len(raw)))]
        cells.extend(extra)
        self._emit(cells)

    def flush(self) -> None:
        """Flush `out` if it buffers (this writer itself holds nothing back)."""
        flush = getattr(self._out, "flush", None)
        if flush is not None:
            flush()
