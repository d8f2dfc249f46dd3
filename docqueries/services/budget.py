"""The Document Query budget of a customer (Document Queries are billable): the rule that decides which
applied patients a bulk import queries, and the caps an import is checked against before anything is applied.

The rule: an applied bulk row starts a Document Query for its patient unless the patient is opted out of HIE
exchange, or its last Document Query started within the customer's `requery_after_hours` (0: never skipped).
A file's rows of one person start one query. The caps: `per_request` queries one import may start, `per_day`
queries of the customer's that may start in one UTC day (every query counts: the API's too, and the ones
the customer's imports still applying have planned)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from docqueries.models import DocumentQuery, DocumentQueryBudget
from patients.models import Patient

# The longest re-query window (10 years): the window is subtracted from now, and one reaching before year 1
# would raise OverflowError in every import of the customer.
REQUERY_MAX_HOURS = 87_600


@dataclass(frozen=True, slots=True)
class Budget:
    per_request: int | None = None
    per_day: int | None = None
    requery_after_hours: int = 0


def budget_of(*, customer_id: uuid.UUID) -> Budget:
    found = DocumentQueryBudget.objects.filter(customer_id=customer_id).first()
    if found is None:
        return Budget()
    return Budget(found.per_request, found.per_day, found.requery_after_hours)


def budget_set(
    *, customer_id: uuid.UUID, per_request: int | None, per_day: int | None, requery_after_hours: int = 0
) -> None:
    if not 0 <= requery_after_hours <= REQUERY_MAX_HOURS:
        raise ValueError(f"requery_after_hours must be 0 to {REQUERY_MAX_HOURS}.")
    DocumentQueryBudget.objects.update_or_create(
        customer_id=customer_id,
        defaults={"per_request": per_request, "per_day": per_day, "requery_after_hours": requery_after_hours},
    )


def patients_recently_queried(
    *, customer_id: uuid.UUID, patient_ids: Iterable[uuid.UUID | str], hours: int
) -> set[uuid.UUID]:
    """The patients among `patient_ids` whose last Document Query started within `hours` (none when 0)."""
    wanted = list(patient_ids)
    if hours <= 0 or not wanted:
        return set()
    recent = _queries_within(customer_id=customer_id, hours=hours).filter(patient_id__in=wanted)
    return set(recent.values_list("patient_id", flat=True).distinct())


def _queries_within(*, customer_id: uuid.UUID, hours: int) -> QuerySet[DocumentQuery]:
    """The customer's Document Queries started within the last `hours`: the re-query window's rule."""
    return DocumentQuery.objects.filter(
        customer_id=customer_id, started_at__gte=timezone.now() - timedelta(hours=hours)
    )


def queries_wanted(
    *,
    customer_id: uuid.UUID,
    new_patients: int,
    matched: QuerySet[Any] | Collection[uuid.UUID],
    bulk_request_id: uuid.UUID | None = None,
) -> int:
    """How many Document Queries the rule starts for `new_patients` patients an import creates (each is
    queried: the caller leaves out the ones it opts out) and the existing patients `matched` (a query of
    patient ids, or the ids: each counts once, unless opted out or queried within the re-query window).

    `bulk_request_id`: the import has run before (a reprocess): a matched patient that has a query of this
    request already gets no second one (one per patient and bulk request, services.start)."""
    eligible = Patient.objects.filter(customer_id=customer_id, id__in=matched, hie_opt_out=False)
    hours = budget_of(customer_id=customer_id).requery_after_hours
    if hours > 0:
        eligible = eligible.exclude(id__in=_queries_within(customer_id=customer_id, hours=hours).values("patient_id"))
    if bulk_request_id is not None:
        eligible = eligible.exclude(
            id__in=DocumentQuery.objects.filter(bulk_request_id=bulk_request_id).values("patient_id")
        )
    return new_patients + eligible.count()


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def queries_started_today(*, customer_id: uuid.UUID) -> int:
    """The customer's Document Queries started since 00:00 UTC."""
    return DocumentQuery.objects.filter(customer_id=customer_id, started_at__gte=_day_start(timezone.now())).count()


@dataclass(frozen=True, slots=True)
class Overrun:
    """How starting `would_start` queries is over a customer's cap: the per-import cap `cap`, or (`per_day`)
    the day's `cap`, of which `used` are started or planned already."""

    would_start: int
    cap: int
    per_day: bool = False
    used: int = 0

    @property
    def left(self) -> int:
        return max(self.cap - self.used, 0)


def budget_overrun(*, customer_id: uuid.UUID, would_start: int, reserved: int = 0) -> Overrun | None:
    """Which cap of the customer's starting `would_start` queries is over, or None (a start of none never
    is, even on a day already over its cap). `reserved`: queries the customer's other imports still applying
    have planned (not started yet)."""
    if would_start <= 0:
        return None
    budget = budget_of(customer_id=customer_id)
    if budget.per_request is not None and would_start > budget.per_request:
        return Overrun(would_start, budget.per_request)
    if budget.per_day is not None:
        used = queries_started_today(customer_id=customer_id) + reserved
        if used + would_start > budget.per_day:
            return Overrun(would_start, budget.per_day, per_day=True, used=used)
    return None


def import_refusal_reason(overrun: Overrun) -> str:
    """An import's refusal in the customer's words: which cap, and by how much (counts only)."""
    if not overrun.per_day:
        return (
            f"Document Query budget: this import would start {overrun.would_start} Document Queries and your "
            f"budget allows {overrun.cap} per import. Nothing was imported: split the file, or ask support to "
            "raise the budget."
        )
    return (
        f"Document Query budget: this import would start {overrun.would_start} Document Queries; {overrun.used} "
        f"of your {overrun.cap} for today (UTC) are started or planned, {overrun.left} left. Nothing was "
        "imported: import it after 00:00 UTC, or ask support to raise the budget."
    )
