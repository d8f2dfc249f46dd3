"""Document Queries (SPEC §8): start (idempotent, in the caller's transaction), run through the configured
backend with retries and a per-customer rate limit, finish with the `medical.document-download` webhook.

Claiming: a processing query is due when `next_attempt_at` has come. Whoever runs it first takes it with one
conditional UPDATE that moves `next_attempt_at` past a lease, so a duplicate actor message, a retry and the
sweeper never call the backend twice for the same step. Actor messages are the fast path (sent on commit,
or delayed for retries and polls); `document_query_sweep` re-dispatches queries whose message was lost.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from docqueries.backends import Completed, Pending, PermanentError, QueryInput, TransientError, get_backend
from docqueries.models import DocumentQuery, QueryStatus
from docqueries.ratelimit import rate_limit_acquire
from docqueries.signals import document_queries_ended
from docqueries.store import store
from metriport_bulk.lib.bulkdb import update_by_id
from webhooks import types

logger = logging.getLogger(__name__)

DISPATCH_BATCH_SIZE = 50
SET_BATCH_SIZE = 1_000
# A query claimed by a worker is retried by others only after this long (covers one gateway call).
LEASE_EXTRA_SECONDS = 60
# A delayed message may arrive a little before `next_attempt_at` (clocks of broker and workers differ).
EARLY_TOLERANCE = timedelta(seconds=1)
SWEEP_BATCH_SIZE = 2_000
# Waits for a rate-limit token shorter than this are slept through; longer ones are rescheduled.
MAX_INLINE_WAIT_SECONDS = 2.0
RETRY_CAP_SECONDS = 300.0
# A query the network has not answered by then fails (polls and retries included).
QUERY_DEADLINE = timedelta(hours=24)


# --- Start ----------------------------------------------------------------------------------------------


def document_queries_start(
    *,
    customer_id: uuid.UUID,
    patient_ids: Iterable[uuid.UUID | str],
    bulk_request_id: uuid.UUID | None = None,
    express: bool = False,
) -> int:
    """Records one Document Query per patient (idempotent per patient and bulk request) in the caller's
    transaction and dispatches them on commit. Returns how many were newly created.

    Patients of other customers and patients opted out of HIE exchange are ignored. Without a bulk
    request, a patient whose query is still processing gets no second one. The first step is due when the
    backend can answer it (the sandbox network answers after DOCQUERY_SANDBOX_DELAY_SECONDS: asking sooner
    would only cost a poll).

    `express` (a bulk request's first chunk, a single patient): the messages go to the express queue, so a
    small request's queries wait behind no big request's backlog (fair scheduling, SPEC §5)."""
    wanted = list(dict.fromkeys(str(patient_id) for patient_id in patient_ids))
    if not wanted:
        return 0
    delay = get_backend().first_step_after()
    created = store().start(
        customer_id=customer_id,
        patient_ids=wanted,
        bulk_request_id=bulk_request_id,
        first_step=timezone.now() + timedelta(seconds=delay),
    )
    _dispatch_on_commit(created, delay_seconds=delay, express=express)
    return len(created)


def on_patient_written(
    sender: object, *, customer_id: uuid.UUID, patient_ids: list[uuid.UUID], **kwargs: object
) -> None:
    """A patient created or updated through the API gets its Document Query at once (express queue)."""
    document_queries_start(customer_id=customer_id, patient_ids=patient_ids, express=True)


def _batches(ids: list, size: int | None = None) -> list[list[str]]:
    """Batches of one actor message: large for a set-based backend (a batch costs a few statements), small
    for one that calls a gateway per query (a batch is that many calls in a row)."""
    size = size or (SET_BATCH_SIZE if get_backend().set_based else DISPATCH_BATCH_SIZE)
    ids = [str(query_id) for query_id in ids]
    return [ids[index : index + size] for index in range(0, len(ids), size)]


def _dispatch_on_commit(query_ids: list, *, delay_seconds: float = 0.0, express: bool = False) -> None:
    """Sends the actor messages of `query_ids` once the caller commits (delayed by `delay_seconds`), to the
    express queue when `express` and fair scheduling is on."""
    from docqueries import tasks

    actor = tasks.document_queries_run_express if express and settings.FAIR_SCHEDULING else tasks.document_queries_run
    batches = _batches(query_ids)
    if not batches:
        return
    delay_ms = int(math.ceil(delay_seconds * 1000)) if delay_seconds > 0 else None

    def send() -> None:
        for batch in batches:
            if delay_ms:
                actor.send_with_options(args=(batch,), delay=delay_ms)
            else:
                actor.send(batch)

    transaction.on_commit(send)


# --- Run ------------------------------------------------------------------------------------------------


def _lease() -> timedelta:
    return timedelta(seconds=settings.DOCQUERY_GATEWAY_TIMEOUT_SECONDS + LEASE_EXTRA_SECONDS)


def _claim(query_id, *, now: datetime) -> DocumentQuery | None:
    claimed = DocumentQuery.objects.filter(
        id=query_id, status=QueryStatus.PROCESSING, next_attempt_at__lte=now + EARLY_TOLERANCE
    ).update(next_attempt_at=now + _lease())
    if not claimed:
        return None
    return DocumentQuery.objects.select_related("patient").get(id=query_id)


def _release(query_id, *, at: datetime) -> None:
    DocumentQuery.objects.filter(id=query_id, status=QueryStatus.PROCESSING).update(next_attempt_at=at)


def _release_quietly(query_id) -> None:
    try:
        _release(query_id, at=timezone.now())
    except Exception:  # noqa: BLE001 - best effort; the lease runs out and the sweeper resumes it anyway
        logger.warning("document query %s: could not release its claim", query_id)


def _query_input(query: DocumentQuery) -> QueryInput:
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
    return nominal * (rng or random).uniform(0.8, 1.2)


def _finish(
    query: DocumentQuery, *, status: str, attempts: int, documents: list[dict] | None = None, error: str = ""
) -> bool:
    """processing -> completed/failed (one conditional UPDATE) and the webhook, in one transaction."""
    from webhooks.services import webhook_message_create

    documents = documents or []
    with transaction.atomic():
        finished = DocumentQuery.objects.filter(id=query.id, status=QueryStatus.PROCESSING).update(
            status=status,
            finished_at=timezone.now(),
            documents=documents,
            error=error[:300],
            next_attempt_at=None,
            attempts=attempts,
        )
        if finished:
            webhook_message_create(
                customer_id=query.customer_id,
                message_type=types.DOCUMENT_DOWNLOAD,
                request_id=str(query.id),
                data=_webhook_data(query, status, documents),
            )
            _announce_ended([query])
    return bool(finished)


def _webhook_data(query: DocumentQuery, status: str, documents: list[dict]) -> dict:
    """The `medical.document-download` payload (besides meta) of one ended query."""
    return {"patients": [_webhook_patient(query, status=status, documents=documents)]}


def _announce_ended(queries: list[DocumentQuery]) -> None:
    """Tells whoever waits on them (a bulk request waiting for its medical data) on commit, by signal: the
    arrow stays bulkimport -> docqueries."""
    request_ids = {query.bulk_request_id for query in queries if query.bulk_request_id is not None}
    if request_ids:
        transaction.on_commit(lambda: document_queries_ended.send(sender=DocumentQuery, bulk_request_ids=request_ids))


def _webhook_patient(query: DocumentQuery, *, status: str, documents: list[dict]) -> dict:
    """One entry of `patients` exactly as @metriport/shared's schema has it: `externalId` omitted when the
    patient has none, documents as DTOs (`mimeType`)."""
    from docqueries.serializers import document_dto

    entry: dict = {"patientId": str(query.patient_id)}
    if query.patient.external_id:
        entry["externalId"] = query.patient.external_id
    entry["status"] = status
    entry["documents"] = [document_dto(document) for document in documents]
    return entry


def _run_one(query: DocumentQuery, backend, *, deferred: dict[float, list]) -> None:
    """One backend call of a claimed query, and what follows from its answer."""
    now = timezone.now()
    if now - query.started_at > QUERY_DEADLINE:
        _finish(
            query,
            status=QueryStatus.FAILED,
            attempts=query.attempts,
            error="no answer from the network within 24 hours",
        )
        return
    try:
        answer = backend.run(_query_input(query))
    except PermanentError as exc:
        _finish(query, status=QueryStatus.FAILED, attempts=query.attempts + 1, error=str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - a transient error or a bug: retry; ids only in logs
        message = str(exc) if isinstance(exc, TransientError) else f"unexpected error ({type(exc).__name__})"
        if not isinstance(exc, TransientError):
            logger.exception("document query %s: backend error", query.id)
        attempts = query.attempts + 1
        if attempts >= settings.DOCQUERY_MAX_ATTEMPTS:
            _finish(
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
        _finish(query, status=QueryStatus.COMPLETED, attempts=query.attempts + 1, documents=answer.documents)
        return
    assert isinstance(answer, Pending)
    delay = max(answer.retry_after, 0.05)
    DocumentQuery.objects.filter(id=query.id, status=QueryStatus.PROCESSING).update(
        attempts=F("attempts") + 1, next_attempt_at=timezone.now() + timedelta(seconds=delay)
    )
    deferred[delay].append(query.id)


def _wait_for_token(customer_id) -> float:
    """Takes a gateway call token for the customer, sleeping through short waits. Returns 0.0 when taken,
    else the (long) wait after which to try again."""
    while True:
        wait = rate_limit_acquire(
            key=f"docquery-gateway:{customer_id}", per_minute=settings.DOCQUERY_RATE_LIMIT_PER_MINUTE
        )
        if wait == 0.0 or wait > MAX_INLINE_WAIT_SECONDS:
            return wait
        time.sleep(wait)


def document_queries_run(*, query_ids: list) -> None:
    """Runs one step of each due query among `query_ids` (the actor's work). Queries not due or taken by
    someone else are skipped; retries, polls and rate-limited queries are rescheduled with delayed messages
    (and stay visible to the sweeper should those be lost)."""
    backend = get_backend()
    if backend.set_based:
        _run_set(query_ids, backend)
        return
    deferred: dict[float, list] = defaultdict(list)
    remaining = [str(query_id) for query_id in query_ids]
    try:
        while remaining:
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
            _dispatch_on_commit(ids, delay_seconds=delay)


def _run_set(query_ids: list, backend) -> None:
    """A whole batch in a few statements (set-based backends, the sandbox): one claim, one backend call for
    all, one UPDATE per outcome and the webhooks inserted together, in one transaction. A failure rolls all
    of it back, claim included, so Dramatiq's retry of the message takes the batch again at once."""
    now = timezone.now()
    # A lease end of this call's own (microseconds): the claimed rows are the ones holding it afterwards.
    lease_until = now + _lease() + timedelta(microseconds=random.randrange(1, 999_999))
    deferred: dict[float, list] = defaultdict(list)
    with transaction.atomic():
        DocumentQuery.objects.filter(
            id__in=[str(query_id) for query_id in query_ids],
            status=QueryStatus.PROCESSING,
            next_attempt_at__lte=now + EARLY_TOLERANCE,
        ).update(next_attempt_at=lease_until)
        queries = list(
            DocumentQuery.objects.filter(id__in=query_ids, next_attempt_at=lease_until).select_related("patient")
        )
        if not queries:
            return
        expired = [q for q in queries if now - q.started_at > QUERY_DEADLINE]
        live = [q for q in queries if now - q.started_at <= QUERY_DEADLINE]
        answers = backend.run_many([_query_input(q) for q in live]) if live else []
        ended: list[tuple[DocumentQuery, str, list[dict], str]] = [
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
        _finish_many(ended, finished_at=now)
        for delay, ids in deferred.items():
            _dispatch_on_commit(ids, delay_seconds=delay)


def _finish_many(ended: list[tuple[DocumentQuery, str, list[dict], str]], *, finished_at: datetime) -> None:
    """processing -> completed/failed for claimed queries, and their webhooks, in the caller's transaction."""
    from webhooks.services import webhook_messages_create

    if not ended:
        return
    update_by_id(
        DocumentQuery,
        ("status", "finished_at", "documents", "error", "next_attempt_at", "attempts"),
        [
            (q.id, status, finished_at, documents, error[:300], None, q.attempts + 1)
            for q, status, documents, error in ended
        ],
    )
    by_customer: dict = defaultdict(list)
    for query, status, documents, _ in ended:
        by_customer[query.customer_id].append((str(query.id), _webhook_data(query, status, documents)))
    for customer_id, items in by_customer.items():
        webhook_messages_create(customer_id=customer_id, message_type=types.DOCUMENT_DOWNLOAD, items=items)
    _announce_ended([query for query, *_ in ended])


def _defer_customer(
    query: DocumentQuery, remaining: list[str], *, wait: float, deferred: dict[float, list]
) -> list[str]:
    """The customer is out of gateway tokens for `wait` seconds: its query and its other due queries of this
    batch try again then. Returns the rest of the batch (other customers' queries go on now)."""
    retry_at = timezone.now() + timedelta(seconds=wait)
    _release(query.id, at=retry_at)
    same_customer = {
        str(query_id)
        for query_id in DocumentQuery.objects.filter(
            id__in=remaining, customer_id=query.customer_id, status=QueryStatus.PROCESSING
        ).values_list("id", flat=True)
    }
    DocumentQuery.objects.filter(id__in=same_customer, next_attempt_at__lte=timezone.now() + EARLY_TOLERANCE).update(
        next_attempt_at=retry_at
    )
    deferred[wait].extend([query.id, *same_customer])
    return [query_id for query_id in remaining if query_id not in same_customer]


def _group_delays(deferred: dict[float, list]) -> dict[float, list]:
    """Merges delays into 0.1 s steps (rounded up: a message must not arrive before its queries are due)."""
    grouped: dict[float, list] = defaultdict(list)
    for delay, ids in deferred.items():
        grouped[math.ceil(delay * 10) / 10].extend(ids)
    return grouped


# --- A bulk request's queries ----------------------------------------------------------------------------


def bulk_queries_open(*, bulk_request_id) -> bool:
    """Whether any Document Query started for the bulk request is still processing (one index probe)."""
    return DocumentQuery.objects.filter(bulk_request_id=bulk_request_id, status=QueryStatus.PROCESSING).exists()


def bulk_query_counts(*, bulk_request_id) -> dict[str, int]:
    """{total, completed, failed, pending} of the queries started for the bulk request (GET, admin)."""
    counts = dict(
        DocumentQuery.objects.filter(bulk_request_id=bulk_request_id)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    completed, failed = counts.get(QueryStatus.COMPLETED, 0), counts.get(QueryStatus.FAILED, 0)
    pending = counts.get(QueryStatus.PROCESSING, 0)
    return {"total": completed + failed + pending, "completed": completed, "failed": failed, "pending": pending}


# --- Sweep ----------------------------------------------------------------------------------------------


def document_query_sweep() -> None:
    """Scheduler job: resumes processing queries left past their `next_attempt_at` (an actor message lost, a
    worker died mid-call). Each is made due now and re-dispatched; the claim makes duplicates harmless, and
    the grace period keeps the sweeper from re-sending what the fast path is about to do."""
    now = timezone.now()
    with transaction.atomic():
        stuck = list(
            DocumentQuery.objects.select_for_update(skip_locked=True)
            .filter(
                status=QueryStatus.PROCESSING,
                next_attempt_at__lte=now - timedelta(seconds=settings.DOCQUERY_SWEEP_GRACE_SECONDS),
            )
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:SWEEP_BATCH_SIZE]
        )
        if not stuck:
            return
        DocumentQuery.objects.filter(id__in=stuck).update(next_attempt_at=now)
        _dispatch_on_commit(stuck)
    logger.info("document query sweep resumed %s queries", len(stuck))
