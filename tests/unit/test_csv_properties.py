"""Property tests: no upload can crash the engine with anything but CsvFileError, the normalizers are
idempotent, and what the result writer writes reads back as written."""

from __future__ import annotations

import csv
import datetime
import io
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkimport.validation import CsvFileError, CsvImport
from metriport_bulk.lib.csvio import RESULT_COLUMNS, ResultCsvWriter, escape_cell, unescape_cell
from patients import normalize

TODAY = datetime.date(2025, 6, 15)
HEADER = ["firstName", "lastName", "dob", "gender", "addressLine1", "city", "state", "zip"]
KNOWN_COLUMNS = [
    *HEADER,
    "addressLine2",
    "phone-1",
    "email",
    "ssn",
    "id",
    "hieOptOut",
    "driversLicenseNo",
    "driversLicenseState",
    "zip-2",
    "city-2",
    "notes",
    "",
]
# Modest by default to keep the suite fast; CSV_PROPERTY_EXAMPLES=5000 for a deeper local run. No
# example database: it would write a .hypothesis/ directory into the working tree.
FAST = settings(
    max_examples=int(os.environ.get("CSV_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Cells that reach the interesting branches: separators, quotes, line breaks, dates, states, digits.
cell_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "",
            " ",
            '"',
            ",",
            "\n",
            "\r\n",
            "\r",
            "1980-03-04",
            "3/4/1980",
            "02/30/1990",
            "03/04/85",
            "Jan 1, 1951",
            "M",
            "female",
            "NY",
            "Puerto Rico",
            "02134-1234",
            "(415) 555-0123",
            "mailto:A@B.CO",
            "123-45-6789",
            "yes",
            "123 Main St Apt 4",
            "=cmd",
            "\x00",
            "é",
        ]
    ),
)


def drain(data: bytes, **kwargs: object) -> None:
    """Parse and validate everything; only CsvFileError may escape."""
    try:
        imported = CsvImport(io.BytesIO(data), today=TODAY, **kwargs)  # type: ignore[arg-type]
        for result in imported.rows():
            assert (result.normalized is None) == bool(result.errors)
            assert result.number >= 1
    except CsvFileError as error:
        assert error.message and str(error) == error.message


@FAST
@given(st.binary(max_size=2000))
def test_random_bytes_only_raise_csv_file_error(data: bytes) -> None:
    drain(data)


@FAST
@given(st.binary(max_size=500))
def test_random_bytes_after_a_valid_header_only_raise_csv_file_error(data: bytes) -> None:
    drain(",".join(HEADER).encode() + b"\n" + data, max_rows=5, max_bytes=2000)


@FAST
@given(st.text(max_size=1000))
def test_random_text_only_raises_csv_file_error(text: str) -> None:
    drain(text.encode("utf-8", "surrogatepass"))


@FAST
@given(
    header=st.lists(st.one_of(st.sampled_from(KNOWN_COLUMNS), st.text(max_size=10)), min_size=1, max_size=14),
    rows=st.lists(st.lists(cell_text, max_size=16), max_size=12),
    line_ending=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
)
def test_random_csv_documents_only_raise_csv_file_error(
    header: list[str], rows: list[list[str]], line_ending: str, bom: bool
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_ending)
    writer.writerow(header)
    writer.writerows(rows)
    data = out.getvalue().encode("utf-8", "surrogatepass")
    drain((b"\xef\xbb\xbf" if bom else b"") + data)


@FAST
@given(rows=st.lists(st.lists(cell_text, min_size=8, max_size=8), min_size=1, max_size=10))
def test_random_cells_under_a_valid_header_give_one_result_per_row(rows: list[list[str]]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # "\r\n" makes the csv module quote every CR and LF
    writer.writerow(HEADER)
    writer.writerows(rows)
    try:
        results = list(CsvImport(io.BytesIO(out.getvalue().encode("utf-8", "surrogatepass")), today=TODAY).rows())
    except CsvFileError:
        return  # e.g. a NUL cell (binary) or a surrogate (not UTF-8), or every row blank
    non_blank = [row for row in rows if "".join(row).strip()]
    assert [r.raw for r in results] == non_blank
    assert [r.number for r in results] == list(range(1, len(non_blank) + 1))


# --- idempotence: a normalized value normalizes to itself ---------------------------------------------

text_or_sample = st.one_of(st.text(max_size=40), cell_text)


def assert_idempotent(function: object, value: str) -> None:
    once = function(value)  # type: ignore[operator]
    if once is not None:
        assert function(once) == once  # type: ignore[operator]


@FAST
@given(text_or_sample)
def test_name_city_and_address_normalizers_are_idempotent(value: str) -> None:
    for function in (
        normalize.normalize_name,
        normalize.normalize_city,
        normalize.normalize_address_line,
        normalize.title_case_if_not_multi_case,
        normalize.normalize_external_id,
        normalize.normalize_drivers_license_value,
    ):
        assert_idempotent(function, value)


@FAST
@given(text_or_sample)
def test_address_unit_split_is_stable(value: str) -> None:
    line = normalize.normalize_address_line(value)
    if line is not None:
        main, unit = normalize.split_address_unit(line)
        assert normalize.split_address_unit(main)[0] == main or unit is None


@FAST
@given(st.one_of(text_or_sample, st.dates().map(lambda d: f"{d.month}/{d.day}/{d.year}")))
def test_dob_normalizer_is_idempotent(value: str) -> None:
    once = normalize.normalize_dob(value, today=TODAY)
    if once is not None:
        assert normalize.normalize_dob(once, today=TODAY) == once
        assert len(once) == 10 and once[4] == "-" and once[7] == "-"


@FAST
@given(
    st.one_of(
        text_or_sample,
        st.from_regex(r"\A[ (+1-]{0,3}[0-9]{3}[) .-]{0,2}[0-9]{3}[ .-]?[0-9]{4}\Z"),
        st.from_regex(r"\A[0-9]{3,5}(-[0-9]{0,4})?\Z"),
        st.from_regex(r"\A[a-z0-9._'+-]{1,10}@[a-z0-9-]{1,8}\.[a-z]{2,4}\Z"),
    )
)
def test_contact_address_and_identifier_normalizers_are_idempotent(value: str) -> None:
    for function in (
        normalize.normalize_phone,
        normalize.normalize_zip,
        normalize.normalize_email,
        normalize.normalize_state,
        normalize.normalize_gender,
        normalize.normalize_ssn,
        normalize.normalize_hie_opt_out,
    ):
        assert_idempotent(function, value)


@FAST
@given(st.text(max_size=30))
def test_gender_and_state_normalize_to_codes_only(value: str) -> None:
    assert normalize.normalize_gender(value) in (None, "M", "F", "O", "U")
    state = normalize.normalize_state(value)
    assert state is None or (len(state) == 2 and state.isupper())


# --- the result writer round-trips --------------------------------------------------------------------


@FAST
@given(
    header=st.lists(st.text(max_size=8), min_size=1, max_size=5),
    raw=st.lists(st.text(max_size=20), max_size=7),
    reason=st.text(max_size=30),
)
def test_result_writer_round_trips_with_escaping(header: list[str], raw: list[str], reason: str) -> None:
    out = io.BytesIO()
    writer = ResultCsvWriter(out, header)
    writer.write(raw, metriport_id=None, status="failed", reason=reason, action="")
    rows = list(csv.reader(io.StringIO(out.getvalue().decode("utf-8", "surrogatepass"), newline="")))
    assert len(rows) == 2
    assert len(rows[0]) == len(rows[1]) == len(header) + len(RESULT_COLUMNS)
    assert [unescape_cell(cell) for cell in rows[0]] == [*header, *RESULT_COLUMNS]
    padded = (raw + [""] * len(header))[: len(header)]
    expected = [*padded, "", "failed", reason, *[""] * (len(RESULT_COLUMNS) - 3)]
    # Each cell reads back exactly once the one escape is undone, and is escaped only when it must be.
    assert [unescape_cell(cell) for cell in rows[1]] == expected
    assert rows[1] == [escape_cell(cell) for cell in expected]


@FAST
@given(
    header=st.sampled_from([HEADER, [*HEADER, *RESULT_COLUMNS[:3]], [*HEADER, "reason"]]),
    rows=st.lists(st.lists(cell_text, min_size=0, max_size=12), min_size=1, max_size=14),
    line_ending=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
    blank_lines=st.lists(st.integers(min_value=0, max_value=14), max_size=4),
    rows_per_segment=st.integers(min_value=1, max_value=6),
)
def test_segments_read_back_exactly_the_rows_of_the_whole_file(
    header: list[str],
    rows: list[list[str]],
    line_ending: str,
    bom: bool,
    blank_lines: list[int],
    rows_per_segment: int,
) -> None:
    """A parse in segments (services.parse) reads each segment as the header's bytes then the segment's, with
    its first row number: together they give the very rows (numbers, cells, values, errors) of one pass over
    the file, whatever its line endings, BOM, blank lines, quoted line breaks, result columns of ours or
    cells too many or too few; and the scan fails the file exactly when the one pass does."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_ending)
    writer.writerow(header)
    for i, row in enumerate(rows):
        out.write(line_ending * blank_lines.count(i))
        writer.writerow(row)
    data = (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8", "surrogatepass")

    def outcome(imported: CsvImport) -> list[tuple[object, ...]]:
        return [(r.number, r.raw, r.normalized, r.errors) for r in imported.rows()]

    try:
        whole = outcome(CsvImport(io.BytesIO(data), today=TODAY, max_rows=10))
    except CsvFileError as error:
        try:
            CsvImport(io.BytesIO(data), today=TODAY, max_rows=10, track_offsets=True).segments(rows_per_segment)
        except CsvFileError as scan_error:
            assert scan_error.code == error.code
            return
        raise AssertionError(f"the scan passed a file the parse fails ({error.code})") from None
    scan = CsvImport(io.BytesIO(data), today=TODAY, max_rows=10, track_offsets=True)
    segments = scan.segments(rows_per_segment)
    read_back: list[tuple[object, ...]] = []
    for segment in segments:
        part = data[: scan.header_end] + data[segment.start : segment.end]
        rows_of_segment = outcome(CsvImport(io.BytesIO(part), today=TODAY, first_number=segment.first_number))
        assert [r[0] for r in rows_of_segment] == list(range(segment.first_number, segment.last_number + 1))
        assert len(rows_of_segment) <= rows_per_segment
        read_back.extend(rows_of_segment)
    assert read_back == whole
