"""The result file: every row's own cells come back exactly as uploaded, whatever characters they hold, in
row order, with the row's outcome. On PostgreSQL the rows are streamed out with COPY TO, whose text format
escapes backslashes, tabs and line breaks: those must not leak into the file."""

from __future__ import annotations

import csv
import io

import pytest

from bulkimport import services
from bulkimport.models import BulkRequest, BulkStatus
from metriport_bulk.lib import storage
from tests.bulkimport.helpers import HEADER, csv_bytes, person
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db(transaction=True)

AWKWARD = [
    "back\\slash",
    "\\N",  # COPY's text form of NULL
    "\\t not a tab, \\n not a newline",
    "a\ttab inside",
    "two\nlines",
    "crlf\r\ninside",
    '"quoted" and, comma',
    "Ünïcödé 患者 🙂",
    "   padded   ",
]


def test_result_cells_equal_the_uploaded_cells_whatever_they_hold(broker):
    rows = [person("Ann", zip_code=f"1000{i}", ext=value) for i, value in enumerate(AWKWARD)]
    rows += [[value, "Doe", "not a date", "F", value, "New York", "NY", "10001", "", value] for value in AWKWARD]
    body = csv_bytes(rows)
    request = services.bulk_request_create(customer=make_tenant().customer, facility_id=None, dry_run=False)
    services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
    services.bulk_request_parse(request_id=request.id)
    for chunk in request.chunks.all():
        services.bulk_chunk_apply(chunk_id=chunk.id)
    services.bulk_request_finish(request_id=request.id)

    finished = BulkRequest.objects.get(id=request.id)
    assert finished.status == BulkStatus.COMPLETED
    with storage.open_for_read(finished.result_key) as stream:
        result = list(csv.reader(io.StringIO(stream.read().decode("utf-8"), newline="")))
    assert result[0] == [*HEADER, "metriportId", "status", "reason", "action"]
    assert [line[: len(HEADER)] for line in result[1:]] == rows
    outcomes = [(line[-3], bool(line[-4]), bool(line[-2])) for line in result[1:]]
    # (status, has a patient id, has a reason): the valid half succeeded, the other half failed with a reason.
    assert outcomes == [("successful", True, False)] * len(AWKWARD) + [("failed", False, True)] * len(AWKWARD)
