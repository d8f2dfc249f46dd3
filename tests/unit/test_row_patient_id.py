"""A row's patient id (bulkimport.services.plan.row_patient_id) is uuid5 of the namespace and
"<request id>:<row number>": the value earlier runs gave the same row (a resumed or reprocessed request must
find the patient it created), computed faster than uuid.uuid5."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from bulkimport.services.plan import PATIENT_ID_NAMESPACE, row_patient_id


@given(request_id=st.uuids(), number=st.integers(min_value=0, max_value=2**31 - 1))
def test_a_rows_patient_id_is_uuid5_of_its_request_and_number(request_id: uuid.UUID, number: int) -> None:
    expected = uuid.uuid5(PATIENT_ID_NAMESPACE, f"{request_id}:{number}")
    found = row_patient_id(request_id, number)
    assert found == expected
    assert (found.version, found.variant) == (5, uuid.RFC_4122)


def test_rows_of_two_requests_get_different_ids() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    # The cached prefix is the request's own: asking for one request never changes the other's ids.
    assert row_patient_id(first, 1) != row_patient_id(second, 1)
    assert row_patient_id(first, 1) == uuid.uuid5(PATIENT_ID_NAMESPACE, f"{first}:1")
