"""Reads of bulk requests and rows, scoped to one customer."""

from __future__ import annotations

import uuid

from django.db.models import Count, QuerySet
from django.http import Http404

from bulkimport.models import BulkRequest, BulkRowError, BulkStatus
from metriport_bulk.lib.ids import as_uuid
from patients.models import Customer
from patients.selectors import facility_get


class InvalidFilter(ValueError):
    pass


def bulk_request_get(*, customer: Customer, request_id: str | uuid.UUID) -> BulkRequest:
    request_uuid = as_uuid(request_id)  # not an id: no such request
    request = BulkRequest.objects.filter(customer=customer, id=request_uuid).first() if request_uuid else None
    if request is None:
        raise Http404(f"Bulk request {request_id} not found.")
    return request


def bulk_request_list(
    *, customer: Customer, facility_id: str | None = None, status: str | None = None
) -> QuerySet[BulkRequest]:
    requests = BulkRequest.objects.filter(customer=customer)
    if facility_id:
        # As on the patient list: an unknown (or another customer's) facility is a 404, not an empty list.
        requests = requests.filter(facility=facility_get(customer=customer, facility_id=facility_id))
    if status:
        if status not in BulkStatus.values:
            raise InvalidFilter(f"status must be one of {', '.join(BulkStatus.values)}.")
        requests = requests.filter(status=status)
    return requests


def bulk_error_counts(*, request_id) -> list[tuple[str, int]]:
    """(error code, rows with it) for one request, most frequent first; uses the (request, code) index."""
    return list(
        BulkRowError.objects.filter(request_id=request_id)
        .values_list("code")
        .annotate(rows=Count("row_number", distinct=True))
        .order_by("-rows", "code")
    )
