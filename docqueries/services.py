"""Document Queries (placeholder until the webhooks and Document Queries issue lands; interface is final)."""

from __future__ import annotations


def document_queries_start(*, customer_id, patient_ids: list, bulk_request_id=None) -> int:
    """Records one Document Query per patient (idempotent per patient and bulk request) in the caller's
    transaction and dispatches them on commit. Returns how many were newly created."""
    return 0


def document_query_sweep() -> None:
    return None
