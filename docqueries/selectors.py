"""Reads of Document Queries, always scoped by customer."""

from __future__ import annotations

import uuid

from docqueries.models import DocumentQuery
from metriport_bulk.lib.ids import as_uuid
from patients.models import Customer, Patient


class PatientNotFound(Exception):
    pass


def _customers_patient(customer: Customer, patient_id: str) -> uuid.UUID:
    """The id of the customer's patient `patient_id`; PatientNotFound for an unknown id, a malformed one and
    another customer's patient alike."""
    patient_uuid = as_uuid(patient_id)
    if patient_uuid is None or not Patient.objects.filter(customer=customer, id=patient_uuid).exists():
        raise PatientNotFound
    return patient_uuid


def document_query_latest(*, customer: Customer, patient_id: str) -> DocumentQuery | None:
    """The patient's most recent query, or None when it has none. Raises PatientNotFound for an unknown
    patient id and for another customer's patient alike."""
    patient_uuid = _customers_patient(customer, patient_id)
    return (
        DocumentQuery.objects.filter(customer=customer, patient_id=patient_uuid).order_by("-started_at", "-id").first()
    )


def patient_documents(*, customer: Customer, patient_id: str) -> list[dict]:
    """Every document the patient's completed queries found, newest query first, each document once.
    Raises PatientNotFound as document_query_latest does."""
    patient_uuid = _customers_patient(customer, patient_id)
    queries = DocumentQuery.objects.filter(customer=customer, patient_id=patient_uuid, status="completed")
    seen: dict[str, dict] = {}
    for documents in queries.order_by("-started_at", "-id").values_list("documents", flat=True):
        for document in documents or []:
            if isinstance(document, dict) and document.get("id") is not None:
                seen.setdefault(str(document["id"]), document)
    return list(seen.values())


def patient_in_facility(*, customer: Customer, patient_id: str, facility_id: str) -> bool:
    patient_uuid, facility_uuid = as_uuid(patient_id), as_uuid(facility_id)
    if patient_uuid is None or facility_uuid is None:
        return False
    return Patient.objects.filter(customer=customer, id=patient_uuid, facilities__id=facility_uuid).exists()
