"""bulkimport's statements through the ORM (the embedded SQLite default): values decoded in Python."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from django.db.models import TextField
from django.db.models.functions import Cast

from bulkimport.models import BulkRow, RowStatus
from docqueries.models import DocumentQuery
from metriport_bulk.lib.bulkdb import orm as generic
from patients.models import Patient


def pending_rows(request_id: uuid.UUID, *, first: int, last: int, limit: int) -> list[Any]:
    stored = (
        BulkRow.objects.filter(request_id=request_id, status=RowStatus.PENDING, number__gte=first, number__lte=last)
        .order_by("number")
        .values_list(
            "id",
            "number",
            "match_key",
            "normalized",
            "action",
            "matched_patient_id",
            "matched_on",
            "duplicate_of",
            "drift",
        )[:limit]
    )
    found = []
    for row_id, number, key, normalized, action, matched, matched_on, duplicate_of, drift in stored:
        n: dict[str, Any] = normalized or {}  # a pending row is valid: its values are all there
        found.append(
            (
                row_id,
                number,
                key,
                _zips(n),
                n.get("hieOptOut"),
                action,
                matched,
                matched_on,
                duplicate_of,
                drift is not None,
            )
        )
    return found


def plan_rows(request_id: uuid.UUID, *, after: int, limit: int) -> list[Any]:
    return list(
        BulkRow.objects.filter(request_id=request_id, status=RowStatus.PENDING, number__gt=after)
        .order_by("number")
        .values_list("id", "number", "match_key")[:limit]
    )


def row_zips(request_id: uuid.UUID, rows: Sequence[tuple[int, int]]) -> dict[int, list[str]]:
    stored = BulkRow.objects.filter(
        request_id=request_id, number__gte=rows[0][1], number__lte=rows[-1][1], id__in=[row_id for row_id, _ in rows]
    ).values_list("id", "normalized")
    return {row_id: _zips(normalized or {}) for row_id, normalized in stored}


def _zips(normalized: dict[str, Any]) -> list[str]:
    """A valid row's address zips (its values are all there)."""
    return [address["zip"] for address in normalized["addresses"]]


def mark_applied(request_id: uuid.UUID, rows: Sequence[Any], numbers: tuple[int, int]) -> None:
    generic.update_by_id(
        BulkRow,
        ("status", "action", "patient_id", "matched_patient_id", "matched_on"),
        [(row_id, RowStatus.SUCCEEDED, *values) for row_id, *values in rows],
    )


def result_rows(request_id: uuid.UUID) -> Iterator[Any]:
    queries = {
        patient_id: (status, len(documents or []))
        for patient_id, status, documents in DocumentQuery.objects.filter(bulk_request_id=request_id).values_list(
            "patient_id", "status", "documents"
        )
    }
    opted_out_patients = set(
        Patient.objects.filter(
            hie_opt_out=True, id__in=BulkRow.objects.filter(request_id=request_id).values("patient_id")
        ).values_list("id", flat=True)
    )
    rows = (
        BulkRow.objects.filter(request_id=request_id)
        .order_by("number")
        .annotate(raw_text=Cast("raw", TextField()))
        .values_list(
            "raw_text",
            "patient_id",
            "status",
            "reason",
            "action",
            "normalized",
            "error_code",
            "matched_patient_id",
            "matched_on",
        )
    )
    for raw, patient_id, status, reason, action, normalized, codes, matched, matched_on in rows.iterator(
        chunk_size=2000
    ):
        query_status, documents = queries.get(patient_id, (None, None))
        n = normalized or {}
        opted_out = bool(n.get("hieOptOut")) or patient_id in opted_out_patients
        yield (
            raw,
            patient_id,
            status,
            reason,
            action,
            opted_out,
            query_status,
            documents,
            codes,
            matched,
            matched_on,
            n.get("facilityId"),
        )
