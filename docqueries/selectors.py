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
