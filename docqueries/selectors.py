"""Reads of Document Queries, always scoped by customer."""

from __future__ import annotations

import uuid

from docqueries.models import DocumentQuery
from patients.models import Customer, Patient


class PatientNotFound(Exception):
    pass


def document_query_latest(*, customer: Customer, patient_id: str) -> DocumentQuery | None:
    """The patient's most recent query, or None when it has none. Raises PatientNotFound for an unknown
    patient id and for another customer's patient alike."""
    try:
        patient_uuid = uuid.UUID(str(patient_id))
    except ValueError as exc:
        raise PatientNotFound from exc
    if not Patient.objects.filter(customer=customer, id=patient_uuid).exists():
        raise PatientNotFound
    return (
        DocumentQuery.objects.filter(customer=customer, patient_id=patient_uuid).order_by("-started_at", "-id").first()
    )


def patient_documents(*, customer: Customer, patient_id: str) -> list[dict]:
    """Every document the patient's completed queries found, newest query first, each document once.
    Raises PatientNotFound as document_query_latest does."""
    try:
        patient_uuid = uuid.UUID(str(patient_id))
    except ValueError as exc:
        raise PatientNotFound from exc
    if not Patient.objects.filter(customer=customer, id=patient_uuid).exists():
        raise PatientNotFound
    queries = DocumentQuery.objects.filter(customer=customer, patient_id=patient_uuid, status="completed")
    seen: dict[str, dict] = {}
    for documents in queries.order_by("-started_at", "-id").values_list("documents", flat=True):
        for document in documents or []:
            if isinstance(document, dict) and document.get("id") is not None:
                seen.setdefault(str(document["id"]), document)
    return list(seen.values())


def patient_in_facility(*, customer: Customer, patient_id: str, facility_id: str) -> bool:
    try:
        patient_uuid, facility_uuid = uuid.UUID(str(patient_id)), uuid.UUID(str(facility_id))
    except ValueError:
        return False
    return Patient.objects.filter(customer=customer, id=patient_uuid, facilities__id=facility_uuid).exists()
