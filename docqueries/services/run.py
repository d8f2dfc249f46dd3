"""Running Document Queries: claim a due query, call the backend, and follow its answer (finish, retry with
backoff, poll again, or wait for the customer's rate limit)."""

from __future__ import annotations

import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from docqueries.backends import Backend, Completed, Pending, PermanentError, QueryInput, TransientError, get_backend
from docqueries.models import DocumentQuery, QueryStatus
from docqueries.ratelimit import rate_limit_acquire
from docqueries.services.dispatch import QueryId, dispatch_on_commit
from docqueries.services.finish import Ended, finish_many, finish_one
from docqueries.services.lanes import LaneMark
from docqueries.store import store
from docqueries.store.claimed import QUERY_FIELDS, ClaimedQuery, with_patients
from metriport_bulk.lib.bulkdb import due_by

logger = logging.getLogger(__name__)

# A query claimed by a worker is retried by others only after this long (covers one gateway call).
LEASE_EXTRA_SECONDS = 60
# A delayed message may arrive a little before `next_attempt_at` (clocks of broker and workers differ).
EARLY_TOLERANCE = timedelta(seconds=1)
# Waits for a rate-limit token shorter than this are slept through; longer ones are rescheduled.
MAX_INLINE_WAIT_SECONDS = 2.0
RETRY_CAP_SECONDS = 300.0
# A query the network has not answered by then fails (polls and retries included).
QUERY_DEADLINE = timedelta(hours=24)

# Query ids to send again, by the delay (seconds) after which they are due.
Deferred = dict[float, list[QueryId]]


def _lease() -> timedelta:
    return timedelta(seconds=settings.DOCQUERY_GATEWAY_TIMEOUT_SECONDS + LEASE_EXTRA_SECONDS)


def _claim(query_id: QueryId, *, now: datetime) -> ClaimedQuery | None:
    claimed = DocumentQuery.objects.filter(
        id=query_id, status=QueryStatus.PROCESSING, next_attempt_at__lte=now + EARLY_TOLERANCE
    ).update(next_attempt_at=now + _lease())
    if not claimed:
        return None
    found = with_patients(DocumentQuery.objects.filter(id=query_id).values_list(*QUERY_FIELDS))
    return found[0] if found else None


def _release(query_id: QueryId, *, at: datetime, express: bool | None = None) -> None:
    """Hands a claimed query back, due `at`; `express=False`: its next message goes to the ordinary lane."""
    changes = {} if express is None else {"express": express}
    DocumentQuery.objects.filter(id=query_id, status=QueryStatus.PROCESSING).update(next_attempt_at=at, **changes)


def _release_quietly(query_id: QueryId) -> None:
    try:
        _release(query_id, at=timezone.now())
    except Exception:  # noqa: BLE001 - best effort; the lease runs out and the sweeper resumes it anyway
        logger.warning("document query %s: could not release its claim", query_id)


def _query_input(query: ClaimedQuery) -> QueryInput:
    patient = query.patient
    return QueryInput(
        request_id=str(query.id),
        customer_id=str(query.customer_id),
        patient_id=str(query.patient_id),
        external_id=patient.external_id,
        started_at=query.started_at,
        attempt=query.attempts + 1,
        demographics={
            "id": str(patient.id),
            "externalId": patient.external_id or None,
            "firstName": patient.first_name,
            "lastName": patient.last_name,
            "dob": patient.dob.isoformat(),
            "genderAtBirth": patient.gender_at_birth,
            "address": patient.addresses,
        },
    )


def retry_delay(attempts: int, *, rng: random.Random | None = None) -> float:
    """Seconds before retrying after the `attempts`-th call failed: base * 2^(n-1), capped, +/-20 % jitter."""
    nominal = min(settings.DOCQUERY_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_CAP_SECONDS)
    return float(nominal * (rng or random).uniform(0.8, 1.2))


def _run_one(query: ClaimedQuery, backend: Backend, *, deferred: Deferred) -> None:
    """One backend call of a claimed query, and what follows from its answer."""
    now = timezone.now()
    if now - query.started_at > QUERY_DEADLINE:
        finish_one(
            query,
            status=QueryStatus.FAILED,
            attempts=query.attempts,
            error="no answer from the network within 24 hours",
        )
        return
    try:
        answer = backend.run(_query_input(query))
    except PermanentError as exc:
        finish_one(query, status=QueryStatus.FAILED, attempts=query.attempts + 1, error=str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - a transient error or a bug: retry; ids only in logs
        message = str(exc) if isinstance(exc, TransientError) else f"unexpected error ({type(exc).__name__})"
        if not isinstance(exc, TransientError):
            logger.exception("document query %s: backend error", query.id)
        attempts = query.attempts + 1
        if attempts >= settings.DOCQUERY_MAX_ATTEMPTS:
            finish_one(
                query,
                status=QueryStatus.FAILED,
                attempts=attempts,
                error=f"{message}; gave up after {attempts} attempts",
            )
            return
        retry_after = getattr(exc, "retry_after", None)
        delay = max(retry_delay(attempts), retry_after or 0.0)
        DocumentQuery.objects.filter(id=query.id, status=QueryStatus.PROCESSING).update(
            attempts=attempts, next_attempt_at=timezone.now() + timedelta(seconds=delay), error=message[:300]
        )
        logger.info("document query %s attempt %s failed: %s; retry in %.1fs", query.id, attempts, message, delay)
        deferred[delay].append(query.id)
        return
    if isinstance(answer, Completed):
        finish_one(query, status=QueryStatus.COMPLETED, attempts=query.attempts + 1, documents=answer.documents)
        return
    assert isinstance(answer, Pending)
    delay = max(answer.retry_after, 0.05)
    DocumentQuery.objects.filter(id=query.id, status=QueryStatus.PROCESSING).update(
        attempts=F("attempts") + 1, next_attempt_at=timezone.now() + timedelta(seconds=delay)
    )
    deferred[delay].append(query.id)


def _wait_for_token(customer_id: object) -> float:
    """Takes a gateway call token for the customer, sleeping through short waits. Returns 0.0 when taken,
    else the (long) wait after which to try again."""
    while True:
        wait = rate_limit_acquire(
            key=f"docquery-gateway:{customer_id}", per_minute=settings.DOCQUERY_RATE_LIMIT_PER_MINUTE
        )
        if wait == 0.0 or wait > MAX_INLINE_WAIT_SECONDS:
            return wait
        time.sleep(wait)


def document_queries_run(
    *, query_ids: Sequence[QueryId], lane: str | None = None, queued_at: float | None = None
) -> None:
    """Runs one step of each due query among `query_ids` (the actor's work: a message that entered `lane`
    at `queued_at`, which it records first, services.lanes). Queries not due or taken by someone else are
    skipped; retries, polls and rate-limited queries are rescheduled with delayed messages (and stay visible
    to the sweeper should those be lost)."""
    lane_mark = LaneMark(lane, queued_at)
    backend = get_backend()
    if backend.set_based:
        _run_set(query_ids, backend)
        return
    deferred: Deferred = defaultdict(list)
    remaining = [str(query_id) for query_id in query_ids]
    try:
        while remaining:
            lane_mark.again()
            query = _claim(remaining.pop(0), now=timezone.now())
            if query is None:
                continue
            if backend.rate_limited:
                wait = _wait_for_token(query.customer_id)
                if wait > 0:
                    remaining = _defer_customer(query, remaining, wait=wait, deferred=deferred)
                    continue
            try:
                _run_one(query, backend, deferred=deferred)
            except Exception:
                # The database failed under us: hand the query back at once so Dramatiq's retry of this
                # message can take it again (instead of waiting for the lease to run out), then let it retry.
                _release_quietly(query.id)
                raise
    finally:
        for delay, ids in _group_delays(deferred).items():
            dispatch_on_commit(ids, delay_seconds=delay)


def _run_set(query_ids: Sequence[QueryId], backend: Backend) -> None:
    """A whole batch in a few statements (set-based backends, the sandbox): one claim, one backend call for
    all, one UPDATE per outcome and the webhooks inserted together, in one transaction. A failure rolls all
    of it back, claim included, so Dramatiq's retry of the message takes the batch again at once."""
    now = timezone.now()
    # A lease end of this call's own (microseconds): a store that marks its claim in the rows (SQLite's) finds
    # them by it.
    lease_until = now + _lease() + timedelta(microseconds=random.randrange(1, 999_999))
    deferred: Deferred = defaultdict(list)
    with transaction.atomic():
        queries = store().claim_batch(
            [str(query_id) for query_id in query_ids], due=now + EARLY_TOLERANCE, lease_until=lease_until
        )
        if not queries:
            return
        expired = [q for q in queries if now - q.started_at > QUERY_DEADLINE]
        live = [q for q in queries if now - q.started_at <= QUERY_DEADLINE]
        answers = backend.run_many([_query_input(q) for q in live]) if live else []
        ended: list[Ended] = [
            (q, QueryStatus.FAILED, [], "no answer from the network within 24 hours") for q in expired
        ]
        for query, answer in zip(live, answers, strict=True):
            if isinstance(answer, Completed):
                ended.append((query, QueryStatus.COMPLETED, answer.documents, ""))
            else:
                deferred[math.ceil(max(answer.retry_after, 0.05) * 10) / 10].append(query.id)
        for delay, ids in deferred.items():
            DocumentQuery.objects.filter(id__in=ids).update(
                attempts=F("attempts") + 1, next_attempt_at=now + timedelta(seconds=delay)
            )
        finish_many(ended, finished_at=now)
        for delay, ids in deferred.items():
            dispatch_on_commit(ids, delay_seconds=delay)


def _defer_customer(query: ClaimedQuery, remaining: list[str], *, wait: float, deferred: Deferred) -> list[str]:
    """The customer is out of gateway tokens for `wait` seconds: its query and its other due queries of this
    batch try again then. Returns the rest of the batch (other customers' queries go on now)."""
    retry_at = timezone.now() + timedelta(seconds=wait)
    # They try again through the ordinary lane: no longer express queries waiting (services.lanes).
    _release(query.id, at=retry_at, express=False)
    same_customer = {
        str(query_id)
        for query_id in DocumentQuery.objects.filter(
            id__in=remaining, customer_id=query.customer_id, status=QueryStatus.PROCESSING
        ).values_list("id", flat=True)
    }
    DocumentQuery.objects.filter(
        due_by("next_attempt_at", timezone.now() + EARLY_TOLERANCE), id__in=same_customer
    ).update(next_attempt_at=retry_at, express=False)
    deferred[wait].extend([query.id, *same_customer])
    return [query_id for query_id in remaining if query_id not in same_customer]


def _group_delays(deferred: Deferred) -> Deferred:
    """Merges delays into 0.1 s steps (rounded up: a message must not arrive before its queries are due)."""
    grouped: Deferred = defaultdict(list)
    for delay, ids in deferred.items():
        grouped[math.ceil(delay * 10) / 10].extend(ids)
    return grouped
