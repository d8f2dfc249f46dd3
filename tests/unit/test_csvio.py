"""metriport_bulk.lib.csvio: the streaming decoding reader, formula escaping and the result writer."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from metriport_bulk.lib.csvio import (
    RESULT_COLUMNS,
    CsvFileError,
    CsvReader,
    FileErrorCode,
    ResultCsvWriter,
    escape_cell,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "csv"
BIG = 10 * 1024 * 1024


def read_rows(data: bytes, *, max_bytes: int = BIG) -> list[list[str]]:
    return list(CsvReader(io.BytesIO(data), max_bytes=max_bytes))


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


class NonSeekable(io.RawIOBase):
    """An upload body that can only be read forward, a few bytes at a time (like a socket)."""

    def __init__(self, data: bytes, chunk: int = 7) -> None:
        self._data = data
        self._chunk = chunk
        self.read_calls = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        self.read_calls += 1
        size = self._chunk if size < 0 else min(size, self._chunk)
        data, self._data = self._data[:size], self._data[size:]
        return data


EXPECTED = [
    ["firstName", "lastName", "dob", "gender", "addressLine1", "city", "state", "zip"],
    ["Jane", "Doe", "1980-03-04", "F", "123 Main St", "Boston", "MA", "02134"],
    ["John", "Smith", "1975-12-31", "M", "9 Elm Ave", "Providence", "RI", "02903"],
]


# --- line endings, BOM, quoting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ending"),
    [("valid_lf.csv", b"\n"), ("crlf.csv", b"\r\n"), ("cr_only.csv", b"\r"), ("bom_utf8.csv", b"\n")],
)
def test_line_endings_and_bom_read_the_same_rows(name: str, ending: bytes) -> None:
    data = fixture(name)
    # Guard the fixture itself: a git checkout converting line endings would make this test vacuous.
    assert data.count(ending) == 3 and (ending != b"\n" or b"\r" not in data)
    assert read_rows(data) == EXPECTED


def test_bom_is_stripped_from_the_first_header_cell() -> None:
    assert fixture("bom_utf8.csv").startswith(b"\xef\xbb\xbf")
    assert read_rows(fixture("bom_utf8.csv"))[0][0] == "firstName"


def test_quoted_fields_keep_commas_newlines_and_doubled_quotes() -> None:
    rows = read_rows(fixture("quoted_fields.csv"))
    assert rows[1][0] == 'Mary "Molly"'
    assert rows[1][4] == "12 Oak St, Apt 3"
    assert rows[2][1] == "De La\nCruz"
    assert rows[2][4] == "1 Pine Rd\r\nUnit 2"  # kept exactly as received, CRLF included
    assert [len(row) for row in rows] == [8, 8, 8]


def test_utf8_non_ascii_is_decoded() -> None:
    data = "firstName\nJosé Muñoz 李\n".encode()
    assert read_rows(data)[1] == ["José Muñoz 李"]


def test_a_multibyte_character_split_across_read_chunks_is_decoded() -> None:
    data = ("firstName\n" + "é" * 50_000 + "\n").encode()
    assert read_rows(data)[1] == ["é" * 50_000]


def test_non_seekable_stream_is_read_incrementally() -> None:
    data = fixture("crlf.csv")
    source = NonSeekable(data)
    assert list(CsvReader(source, max_bytes=BIG)) == EXPECTED  # type: ignore[arg-type]
    assert source.read_calls > 3


def test_reader_does_not_close_the_callers_stream() -> None:
    stream = io.BytesIO(fixture("valid_lf.csv"))
    reader = CsvReader(stream, max_bytes=BIG)
    list(reader)
    del reader
    assert not stream.closed


# --- file-level failures ------------------------------------------------------------------------------


def file_error(data: bytes, *, max_bytes: int = BIG) -> CsvFileError:
    with pytest.raises(CsvFileError) as caught:
        read_rows(data, max_bytes=max_bytes)
    return caught.value


def test_empty_file_fails_as_empty() -> None:
    assert file_error(fixture("empty.csv")).code == FileErrorCode.EMPTY_FILE


@pytest.mark.parametrize("name", ["latin1.csv", "windows1252_header.csv"])
def test_latin1_bytes_fail_as_encoding_with_a_fix(name: str) -> None:
    error = file_error(fixture(name))
    assert error.code == FileErrorCode.ENCODING
    assert "UTF-8" in error.message and "line" in error.message


def test_latin1_error_message_does_not_quote_the_file() -> None:
    error = file_error(fixture("latin1.csv"))
    assert "Jos" not in error.message and "Mu" not in error.message


@pytest.mark.parametrize("name", ["utf16_bom.csv", "utf16le_nobom.csv"])
def test_utf16_fails_as_encoding(name: str) -> None:
    error = file_error(fixture(name))
    assert error.code == FileErrorCode.ENCODING
    assert "UTF-16" in error.message


def test_utf32_fails_as_encoding() -> None:
    assert file_error("a,b\n".encode("utf-32")).code == FileErrorCode.ENCODING


def test_nul_bytes_fail_as_binary() -> None:
    assert file_error(fixture("binary_nul.csv")).code == FileErrorCode.BINARY_FILE


def test_nul_bytes_after_the_first_chunk_fail_as_binary() -> None:
    data = b"firstName\n" + b"Jane\n" * 20_000 + b"\x00\x01\x02\n"
    assert file_error(data).code == FileErrorCode.BINARY_FILE


def test_excel_workbook_renamed_to_csv_is_named_in_the_error() -> None:
    error = file_error(fixture("xlsx_renamed.csv"))
    assert error.code == FileErrorCode.BINARY_FILE
    assert "Excel" in error.message


def test_pdf_fails_as_binary() -> None:
    assert file_error(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n").code == FileErrorCode.BINARY_FILE


def test_size_limit_from_a_seekable_stream_fails_before_reading() -> None:
    stream = io.BytesIO(b"x" * 2048)
    with pytest.raises(CsvFileError) as caught:
        CsvReader(stream, max_bytes=1024)
    assert caught.value.code == FileErrorCode.TOO_LARGE
    assert "1 KB" in caught.value.message
    assert stream.tell() == 0  # refused without consuming the upload


def test_size_limit_on_a_non_seekable_stream_fails_mid_stream() -> None:
    data = b"firstName\n" + b"Jane\n" * 10_000
    reader = CsvReader(NonSeekable(data, chunk=4096), max_bytes=20_000)  # type: ignore[arg-type]
    seen = []
    with pytest.raises(CsvFileError) as caught:
        for row in reader:
            seen.append(row)
    assert caught.value.code == FileErrorCode.TOO_LARGE
    assert 0 < len(seen) < 10_001  # rows before the limit were streamed, then the read stopped
    assert reader.bytes_read <= 20_000 + 64 * 1024


def test_a_file_exactly_at_the_size_limit_is_accepted() -> None:
    data = fixture("valid_lf.csv")
    assert read_rows(data, max_bytes=len(data)) == EXPECTED


def test_unterminated_quote_fails_as_malformed_naming_the_row_start_line() -> None:
    error = file_error(fixture("unterminated_quote.csv"))
    assert error.code == FileErrorCode.MALFORMED
    assert "line 3" in error.message


def test_stray_quote_fails_as_malformed_without_quoting_the_cell() -> None:
    error = file_error(fixture("stray_quote.csv"))
    assert error.code == FileErrorCode.MALFORMED
    assert "line 3" in error.message
    assert "Johnny" not in error.message


def test_huge_single_field_fails_as_malformed() -> None:
    data = b'firstName\n"' + b"a" * 200_000 + b'"\n'
    assert file_error(data).code == FileErrorCode.MALFORMED


def test_csv_file_error_str_is_its_message() -> None:
    error = CsvFileError(FileErrorCode.EMPTY_FILE, "The file is empty.")
    assert str(error) == error.message == "The file is empty."
    assert error.code == "empty_file"


# --- formula escaping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1 415 555 0123", "'+1 415 555 0123"),
        ("-2178", "'-2178"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("", ""),
        ("Jane", "Jane"),
        ("a=b", "a=b"),
        (" =1", " =1"),
        ("'already", "'already"),
    ],
)
def test_escape_cell(value: str, expected: str) -> None:
    assert escape_cell(value) == expected


# --- result writer ------------------------------------------------------------------------------------


def written(header: list[str], *rows: tuple[list[str], dict[str, str | None]]) -> bytes:
    out = io.BytesIO()
    writer = ResultCsvWriter(out, header)
    for raw, result in rows:
        writer.write(raw, **result)  # type: ignore[arg-type]
    return out.getvalue()


def ok(metriport_id: str | None = "pat-1") -> dict[str, str | None]:
    return {"metriport_id": metriport_id, "status": "succeeded", "reason": "", "action": "created"}


def test_writer_writes_header_plus_result_columns() -> None:
    data = written(["firstName", "lastName"])
    assert data == (
        b"firstName,lastName,metriportId,status,reason,errorCode,action,matchedPatientId,matchedOn,"
        b"documentQuery,documents,facilityId\n"
    )
    assert RESULT_COLUMNS == (
        "metriportId",
        "status",
        "reason",
        "errorCode",
        "action",
        "matchedPatientId",
        "matchedOn",
        "documentQuery",
        "documents",
        "facilityId",
    )


def test_writer_pads_short_rows_and_cuts_long_rows_so_result_columns_line_up() -> None:
    data = written(["a", "b", "c"], (["1"], ok()), (["1", "2", "3", "4"], ok(None)), (["1", "2", "3"], ok()))
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[1] == ["1", "", "", "pat-1", "successful", "", "", "created", "", "", "", "", ""]
    assert rows[2] == ["1", "2", "3", "", "successful", "", "", "created", "", "", "", "", ""]
    assert all(len(row) == 13 for row in rows)


def test_writer_writes_the_document_query_columns() -> None:
    data = written(["a"], (["x"], {**ok(), "document_query": "completed", "documents": "3"}))
    assert data.endswith(b"x,pat-1,successful,,,created,,,completed,3,\n")


def test_writer_writes_the_plan_columns() -> None:
    cells = {**ok(), "action": "updated", "error_code": "", "matched_patient_id": "pat-1", "matched_on": "dob zip"}
    data = written(["a"], (["x"], cells))
    assert data.endswith(b"x,pat-1,successful,,,updated,pat-1,dob zip,,,\n")


def test_writer_escapes_every_cell_including_header_and_reason() -> None:
    data = written(
        ["=cmd", "b"],
        (
            ['=HYPERLINK("http://evil.example")', "@x"],
            {"metriport_id": None, "status": "failed", "reason": "-bad", "action": ""},
        ),
    )
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows[0][0] == "'=cmd"
    assert rows[1][:2] == ['\'=HYPERLINK("http://evil.example")', "'@x"]
    assert rows[1][4] == "'-bad"


def test_writer_quotes_commas_quotes_and_newlines_and_uses_lf_line_endings() -> None:
    raw = ["12 Oak St, Apt 3", 'Mary "Molly"', "line1\r\nline2"]
    data = written(["a", "b", "c"], (raw, ok()))
    assert data.count(b"\n") == 3  # two record terminators, plus the newline inside the quoted cell
    assert data.endswith(b",created,,,,,\n") and data.count(b"\r") == 1
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert rows[1][:3] == raw


@pytest.mark.parametrize("cell", ["a\rb", "a\nb", "x\r"])
def test_writer_quotes_a_bare_cr_or_lf_inside_a_cell(cell: str) -> None:
    # A bare CR left unquoted would read back as a row break and shift every column after it.
    data = written(["a", "b"], ([cell, "z"], ok()))
    assert f'"{cell}"'.encode() in data
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert len(rows) == 2 and rows[1][:2] == [cell, "z"]


def test_writer_encodes_utf8_without_bom_and_keeps_the_stream_open() -> None:
    out = io.BytesIO()
    writer = ResultCsvWriter(out, ["name"])
    writer.write(["José 李"], **ok())  # type: ignore[arg-type]
    writer.flush()
    assert not out.closed
    assert not out.getvalue().startswith(b"\xef\xbb\xbf")
    assert "José 李".encode() in out.getvalue()


def test_writer_writes_through_each_row_without_an_explicit_flush() -> None:
    out = io.BytesIO()
    writer = ResultCsvWriter(out, ["a"])
    writer.write(["x"], **ok())  # type: ignore[arg-type]
    assert out.getvalue().endswith(b"x,pat-1,successful,,,created,,,,,\n")


def test_utf16_is_recognized_even_when_the_stream_returns_tiny_reads() -> None:
    source = NonSeekable(fixture("utf16le_nobom.csv"), chunk=3)
    with pytest.raises(CsvFileError) as caught:
        CsvReader(source, max_bytes=BIG)  # type: ignore[arg-type]
    assert caught.value.code == FileErrorCode.ENCODING


# --- the escape round trip (issue 23, defect 4) --------------------------------------------------------

ROUND_TRIP_VALUES = ["'+X1", "=F12", "'=F12", "''=F12", "+X1", "'Neil", "'", "''", "", "Ann", "-", "'-", "@a", "'\tx"]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES)
def test_unescape_undoes_escape_exactly(value: str) -> None:
    from metriport_bulk.lib.csvio import unescape_cell

    assert unescape_cell(escape_cell(value)) == value


def test_escaped_cells_of_different_values_differ() -> None:
    escaped = [escape_cell(value) for value in ROUND_TRIP_VALUES]
    assert len(set(escaped)) == len(ROUND_TRIP_VALUES)
    assert escape_cell("=F12") == "'=F12" and escape_cell("'=F12") == "''=F12"


def test_the_writer_escapes_as_escape_cell_does() -> None:
    rows = list(csv.reader(io.StringIO(written(["a"], *[([v], ok()) for v in ROUND_TRIP_VALUES]).decode())))
    assert [row[0] for row in rows[1:]] == [escape_cell(value) for value in ROUND_TRIP_VALUES]


def _imported(data: bytes) -> list[list[str]]:
    from bulkimport.validation import CsvImport

    return [result.raw for result in CsvImport(io.BytesIO(data)).rows()]


CUSTOMER_HEADER = ["firstName", "lastName", "dob", "gender", "addressLine1", "city", "state", "zip", "note"]


def _customer_file(notes: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CUSTOMER_HEADER)
    writer.writerows([["Ann", "Lee", "1980-01-02", "F", "1 Main St", "Albany", "NY", "10001", note] for note in notes])
    return out.getvalue().encode()


def test_a_customer_file_keeps_its_leading_apostrophes() -> None:
    notes = ["'+X1", "'=F12", "=F12", "'Neil"]
    assert [raw[-1] for raw in _imported(_customer_file(notes))] == notes


def test_a_result_file_of_ours_uploaded_again_reads_back_exactly() -> None:
    notes = ["'+X1", "'=F12", "=F12", "''=F12", "'Neil", "+1 602 555 0140"]
    first = _imported(_customer_file(notes))
    out = io.BytesIO()
    writer = ResultCsvWriter(out, CUSTOMER_HEADER)
    for raw in first:
        writer.write(raw, metriport_id="p", status="succeeded", reason="", action="created")
    assert _imported(out.getvalue()) == first
    assert [raw[-1] for raw in first] == notes


# --- where the encoding error is (issue 23, defect 5) ---------------------------------------------------


def _latin1_at(lines: list[bytes], ending: bytes) -> bytes:
    return ending.join(lines) + ending


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_a_latin1_byte_on_line_2_is_reported_on_line_2_with_its_byte(ending: bytes) -> None:
    data = _latin1_at([b"firstName,lastName", "José,Doe".encode("latin-1"), b"Ann,Lee"], ending)
    error = file_error(data)
    offset = data.index(b"\xe9") + 1
    assert error.code == FileErrorCode.ENCODING
    assert f"on line 2 (byte {offset} of the file)" in error.message
    assert "Save it" in error.message and "UTF-8" in error.message
    assert "Jos" not in error.message


def test_the_line_is_right_far_into_a_file_across_chunk_boundaries() -> None:
    # 70,000 CRLF lines (beyond the sniffed head and one read chunk; CRLFs split across chunks), then a bad byte.
    good = b"firstName,lastName\r\n" + b"Ann,Lee\r\n" * 69_999
    data = good + b"Ren\xe9,Roe\r\n"
    error = file_error(data)
    assert f"on line 70,001 (byte {len(good) + 4:,} of the file)" in error.message


def test_a_character_split_by_a_chunk_boundary_is_not_an_error_and_a_truncated_one_is() -> None:
    from metriport_bulk.lib.csvio import _READ_CHUNK

    pad = b"a," + b"x" * (_READ_CHUNK - 4) + b"\n"  # the 3-byte "€" of the next line straddles the chunk end
    data = b"firstName,lastName\n" + pad + "€,b\n".encode()
    assert read_rows(data)[-1] == ["€", "b"]
    truncated = b"firstName,lastName\nAnn,Le\xe2\x82"  # the file ends inside a character
    assert f"on line 2 (byte {len(truncated) - 1} of the file)" in file_error(truncated).message


def test_a_bom_file_with_a_bad_byte_counts_the_bom_in_the_offset() -> None:
    data = b"\xef\xbb\xbffirstName,lastName\nAnn,L\xe9e\n"
    offset = data.index(b"\xe9") + 1
    assert f"on line 2 (byte {offset} of the file)" in file_error(data).message
