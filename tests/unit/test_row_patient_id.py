"""A row's patient id (bulkimport.services.plan.row_patient_id), the same in every run of the row (a resumed or
reprocessed request must find the patient it created): for a request of before 2026-12-06 (patient_ids 1),
uuid5 of the namespace and "<request id>:<row number>", computed faster than uuid.uuid5; for the requests
since (2), a version 8 UUID ordered by the request's creation and then the row."""

from __future__ import annotations

import datetime
import uuid
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from bulkimport.services.plan import PATIENT_ID_NAMESPACE, row_patient_id

MAX_NUMBER = 2**32 - 1
created = st.datetimes(
    min_value=datetime.datetime(2020, 1, 1), max_value=datetime.datetime(2100, 1, 1), timezones=st.just(datetime.UTC)
)


def request(request_id: uuid.UUID, created_at: datetime.datetime, patient_ids: int = 2) -> SimpleNamespace:
    return SimpleNamespace(id=request_id, created_at=created_at, patient_ids=patient_ids)


@given(request_id=st.uuids(), at=created, number=st.integers(min_value=0, max_value=2**31 - 1))
def test_a_row_of_an_earlier_request_keeps_its_uuid5(request_id: uuid.UUID, at, number: int) -> None:
    expected = uuid.uuid5(PATIENT_ID_NAMESPACE, f"{request_id}:{number}")
    found = row_patient_id(request(request_id, at, patient_ids=1), number)  # type: ignore[arg-type]
    assert found == expected
    assert (found.version, found.variant) == (5, uuid.RFC_4122)


@given(request_id=st.uuids(), at=created, number=st.integers(min_value=0, max_value=MAX_NUMBER))
def test_a_rows_ordered_id_is_its_requests_creation_then_its_number(request_id: uuid.UUID, at, number: int) -> None:
    found = row_patient_id(request(request_id, at), number)  # type: ignore[arg-type]
    milliseconds = int((at - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)) / datetime.timedelta(milliseconds=1))
    expected = (
        milliseconds.to_bytes(6, "big")
        + (0x8000 | (number >> 20)).to_bytes(2, "big")
        + ((0b10 << 62) | ((number & 0xFFFFF) << 42) | (request_id.int & (2**42 - 1))).to_bytes(8, "big")
    )
    assert found.bytes == expected
    assert (found.version, found.variant) == (8, uuid.RFC_4122)


@given(
    request_id=st.uuids(),
    at=created,
    numbers=st.lists(st.integers(min_value=0, max_value=MAX_NUMBER), min_size=2, max_size=20, unique=True),
)
def test_a_requests_patient_ids_grow_with_its_rows(request_id: uuid.UUID, at, numbers: list[int]) -> None:
    """What makes a chunk's patients append to the indexes on patient ids (PostgreSQL compares uuids byte by
    byte, as Python compares their integers)."""
    ids = {number: row_patient_id(request(request_id, at), number) for number in numbers}  # type: ignore[arg-type]
    assert sorted(ids, key=lambda number: ids[number].bytes) == sorted(numbers)


def test_rows_of_two_requests_get_different_ids_and_a_later_request_higher_ones() -> None:
    at = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.UTC)
    first, second = request(uuid.uuid4(), at), request(uuid.uuid4(), at)  # created in the same millisecond
    assert row_patient_id(first, 1) != row_patient_id(second, 1)  # type: ignore[arg-type]
    later = request(uuid.uuid4(), at + datetime.timedelta(milliseconds=1))
    assert row_patient_id(later, 1).bytes > row_patient_id(first, 1_000_000).bytes  # type: ignore[arg-type]
    # The cached uuid5 prefix is the request's own: asking for one request never changes the other's ids.
    old_first, old_second = request(first.id, at, 1), request(second.id, at, 1)
    assert row_patient_id(old_first, 1) != row_patient_id(old_second, 1)  # type: ignore[arg-type]
    assert row_patient_id(old_first, 1) == uuid.uuid5(PATIENT_ID_NAMESPACE, f"{first.id}:1")  # type: ignore[arg-type]
