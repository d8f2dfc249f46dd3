"""Moving a file to and from S3 holds a bounded slice of it in memory, whatever its size (issue 24, flat
memory): a 1,000,000-row input is ~120 MB, and boto3's default transfer keeps up to ten 8 MB parts in
flight per upload, so a worker writing a 1M-row result file grew by ~80 MB over one writing 100k."""

from __future__ import annotations

import os
import tempfile
import tracemalloc

import pytest

from metriport_bulk.lib import storage

pytestmark = pytest.mark.real_services  # S3 (SeaweedFS): the local filesystem path is a plain file copy

SIZE = 48 * 1024 * 1024
BOUND = 20 * 1024 * 1024


def test_s3_upload_and_download_hold_a_bounded_slice_of_the_file():
    assert storage.is_s3()
    key = "tests/memory/big.csv"
    with tempfile.TemporaryFile() as source:
        block = os.urandom(1024 * 1024)
        for _ in range(SIZE // len(block)):
            source.write(block)
        source.seek(0)
        tracemalloc.start()
        try:
            storage.save(key, source)
            _, saved_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            with storage.open_for_read(key) as read:
                read.seek(0, os.SEEK_END)
                assert read.tell() == SIZE
            _, read_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            storage.delete(key)
    assert saved_peak < BOUND, f"upload held {saved_peak / 2**20:.0f} MB of a {SIZE / 2**20:.0f} MB file"
    assert read_peak < BOUND, f"download held {read_peak / 2**20:.0f} MB of a {SIZE / 2**20:.0f} MB file"
