"""The Document Query budget of an import (docqueries.services.budget; Document Queries are billable): an
import, the confirm of a dry run, or the reprocess of a completed import, that would start more queries than
the customer's budget allows is refused before anything is applied. Checked with the plan's count
(services.plan.plan_document_queries) once the rows are planned, before the first chunk: a confirm when it is
asked for (409, the dry run stays confirmable), an import in parse (it ends `failed`, no patient written), a
reprocess before its request is reopened (ReprocessRefused, the request left as it was)."""

from __future__ import annotations

import uuid

from bulkimport.models import BulkPhase, BulkRequest, BulkStatus
from docqueries.services import (
    Overrun,
    budget_of,
    budget_overrun,
    bulk_queries_started,
    import_refusal_reason,
)
from patients.services import customer_budget_lock


def queries_reserved(*, customer_id: uuid.UUID, excluding: uuid.UUID | None = None) -> int:
    """The Document Queries the customer's imports still applying have planned and not started yet (they
    count against today's budget as if started)."""
    imports = BulkRequest.objects.filter(
        customer_id=customer_id,
        status=BulkStatus.PROCESSING,
        phase=BulkPhase.APPLYING,
        dry_run=False,
        document_queries_planned__gt=0,
    )
    if excluding is not None:
        imports = imports.exclude(id=excluding)
    applying = dict(imports.values_list("id", "document_queries_planned"))
    if not applying:
        return 0
    started = bulk_queries_started(bulk_request_ids=list(applying))
    return sum(max((planned or 0) - started.get(request_id, 0), 0) for request_id, planned in applying.items())


def import_budget_refusal(
    *, customer_id: uuid.UUID, would_start: int, request_id: uuid.UUID | None = None
) -> str | None:
    """Why an import (`request_id`, or a dry run's confirm) that would start `would_start` Document Queries
    is over the customer's budget, or None (_overrun: in the caller's transaction, one check at a time)."""
    overrun = _overrun(customer_id=customer_id, would_start=would_start, request_id=request_id)
    return None if overrun is None else import_refusal_reason(overrun)


def reprocess_budget_refusal(*, customer_id: uuid.UUID, would_start: int, request_id: uuid.UUID) -> str | None:
    """Why reprocessing the completed import `request_id`, which would start `would_start` new Document
    Queries, is over the customer's budget, or None; in support's words (reprocessing is theirs). As
    import_budget_refusal's check: the caller reopens the request as applying, its planned count including
    these, before it commits."""
    overrun = _overrun(customer_id=customer_id, would_start=would_start, request_id=request_id)
    if overrun is None:
        return None
    unchanged = "Nothing was reprocessed: the request, its rows and its result are as they were"
    if not overrun.per_day:
        return (
            f"Document Query budget: this reprocess would start {would_start} Document Queries and the "
            f"customer's budget allows {overrun.cap} per import. {unchanged}; raise the budget to reprocess it."
        )
    return (
        f"Document Query budget: this reprocess would start {would_start} Document Queries; {overrun.used} of "
        f"the customer's {overrun.cap} for today (UTC) are started or planned, {overrun.left} left. {unchanged}; "
        "reprocess it after 00:00 UTC, or raise the budget."
    )


def _overrun(*, customer_id: uuid.UUID, would_start: int, request_id: uuid.UUID | None) -> Overrun | None:
    """The cap of the customer's that `would_start` more queries are over, or None. In the caller's
    transaction, which it serializes with the customer's other checks (a lock on the customer): the caller
    records its import as applying, with its planned count, before it commits, so the next check counts it as
    reserved."""
    budget = budget_of(customer_id=customer_id)
    if budget.per_request is None and budget.per_day is None:
        return None
    customer_budget_lock(customer_id=customer_id)
    reserved = queries_reserved(customer_id=customer_id, excluding=request_id) if budget.per_day is not None else 0
    return budget_overrun(customer_id=customer_id, would_start=would_start, reserved=reserved)
