"""storage.open_ranges: the bytes of several ranges of a stored file read as one stream (a file's header, then
a segment of its rows, services.parse), on the local filesystem (the SQLite pass) and S3 (SeaweedFS, the real
pass); a range the file cannot fill fails instead of ending early."""

from __future__ import annotations

import io
import os

import pytest

from metriport_bulk.lib import storage

DATA = os.urandom(700_000)  # a few of the reader's 256 KB chunks
KEY = "tests/ranges/input.csv"


@pytest.fixture
def stored():
    storage.save(KEY, io.BytesIO(DATA))
    yield KEY
    storage.delete(KEY)


@pytest.mark.parametrize(
    "ranges",
    [
        [(0, 58), (300_000, 650_000)],  # a header, then a segment across chunk boundaries
        [(0, 0), (10, 11), (11, 11), (699_999, 700_000)],  # empty ranges, single bytes, the last byte
        [(0, 700_000)],
    ],
)
@pytest.mark.parametrize("read_size", [1, 4096, 1 << 20])
def test_ranges_read_as_one_stream(stored, ranges, read_size):
    expected = b"".join(DATA[start:end] for start, end in ranges)
    with storage.open_ranges(stored, ranges) as stream:
        parts = []
        while part := stream.read(read_size):
            parts.append(part)
    assert b"".join(parts) == expected


def test_a_range_past_the_end_of_the_file_fails_rather_than_end_early(stored):
    with storage.open_ranges(stored, [(0, 10), (699_990, 700_010)]) as stream, pytest.raises(OSError, match="early"):
        stream.read()
