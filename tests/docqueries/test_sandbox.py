"""The sandbox backend: deterministic documents from the patient id, answered after the configured delay."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from docqueries.backends import Completed, Pending, QueryInput, get_backend
from docqueries.backends.sandbox import sandbox_documents


def _input(patient_id: str, started_ago: float) -> QueryInput:
    return QueryInput(
        request_id=str(uuid.uuid4()),
        customer_id=str(uuid.uuid4()),
        patient_id=patient_id,
        external_id="",
        started_at=timezone.now() - timedelta(seconds=started_ago),
        attempt=1,
    )


def test_documents_are_deterministic_per_patient_and_between_zero_and_three():
    ids = [str(uuid.UUID(int=index)) for index in range(200)]
    counts = {len(sandbox_documents(patient_id)) for patient_id in ids}
    assert counts == {0, 1, 2, 3}
    for patient_id in ids[:20]:
        assert sandbox_documents(patient_id) == sandbox_documents(patient_id)
    assert sandbox_documents(ids[0]) != sandbox_documents(ids[1]) or not sandbox_documents(ids[0])


def test_documents_carry_metadata_only():
    documents = [doc for index in range(50) for doc in sandbox_documents(str(uuid.UUID(int=index)))]
    assert documents
    for document in documents:
        assert set(document) == {"id", "fileName", "contentType", "size", "description"}
        assert uuid.UUID(document["id"])
        assert document["contentType"] in ("application/xml", "application/pdf")
        assert isinstance(document["size"], int) and document["size"] > 0
        assert document["fileName"].startswith(document["id"])


def test_answers_pending_until_the_delay_has_passed(settings):
    settings.DOCQUERY_SANDBOX_DELAY_SECONDS = 2
    backend = get_backend("sandbox")
    patient_id = str(uuid.uuid4())
    early = backend.run(_input(patient_id, started_ago=0.5))
    assert isinstance(early, Pending) and 1.0 < early.retry_after <= 1.5
    late = backend.run(_input(patient_id, started_ago=2.5))
    assert isinstance(late, Completed) and late.documents == sandbox_documents(patient_id)


def test_unknown_backend_names_are_refused():
    import pytest

    with pytest.raises(ValueError, match="DOCQUERY_BACKEND"):
        get_backend("carrier-pigeon")
