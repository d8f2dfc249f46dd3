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
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from docqueries.backends import Completed, Pending, PermanentError, QueryInput, TransientError, get_backend
from docqueries.models import DocumentQuery, QueryStatus
from docqueries.ratelimit import rate_limit_acquire
from metriport_bulk.lib.bulkdb import bound_cursor, insert_ignoring_conflicts
from patients.models import Patient

logger = logging.getLogger(__name__)

WEBHOOK_TYPE = "medical.document-download"
DISPATCH_BATCH_SIZE = 50
# A query claimed by a worker is retried by others only after this long (covers one gateway call).
LEASE_EXTRA_SECONDS = 60
# A delayed message may arrive a little before `next_attempt_at` (clocks of broker and workers differ).
EARLY_TOLERANCE = timedelta(seconds=1)
# The sweeper resumes a due query only this long after it became due: the fast path goes first.
SWEEP_GRACE = timedelta(seconds=30)
SWEEP_BATCH_SIZE = 2_000
# Waits for a rate-limit token shorter than this are slept through; longer ones are rescheduled.
MAX_INLINE_WAIT_SECONDS = 2.0
RETRY_CAP_SECONDS = 300.0
# A query the network has not answered by then fails (polls and retries included).
QUERY_DEADLINE = timedelta(hours=24)


# --- Start ----------------------------------------------------------------------------------------------


START_COLUMNS = (
    "id", "customer_id", "patient_id", "bulk_request_id", "status", "started_at", "documents", "attempts",
    "next_attempt_at", "error",
)  # fmt: skip


def document_queries_start(*, customer_id, patient_ids: list, bulk_request_id=None) -> int:
    """Records one Document Query per patient (idempotent per patient and bulk request) in the caller's
    transaction and dispatches them on commit. Returns how many were newly created.

    Patients of other customers are ignored. Without a bulk request, a patient whose query is still
    processing gets no second one."""
    wanted = list(dict.fromkeys(str(patient_id) for patient_id in patient_ids))
    if not wanted:
        return 0
    if connection.vendor == "postgresql":
        created = _start_sql(customer_id, wanted, bulk_request_id)
        _dispatch_on_commit(created)
        return len(created)
    patients = set(Patient.objects.filter(customer_id=customer_id, id__in=wanted).values_list("id", flat=True))
    if bulk_request_id is None:
        # Outside a bulk request nothing unique protects against a second concurrent query: filter first.
        processing = DocumentQuery.objects.filter(patient_id__in=patients, status=QueryStatus.PROCESSING)
        patients -= set(processing.values_list("patient_id", flat=True))
    if not patients:
        return 0
    now = timezone.now()
    # ON CONFLICT DO NOTHING: a concurrent start of the same (patient, bulk request) wins quietly; what comes
    # back is exactly what this call created. COPY-based on PostgreSQL: 2,000 queries per bulk chunk.
    created = insert_ignoring_conflicts(
        DocumentQuery,
        START_COLUMNS,
        [
            (uuid.uuid4(), customer_id, patient_id, bulk_request_id, QueryStatus.PROCESSING, now, [], 0, now, "")
            for patient_id in sorted(patients, key=str)
        ],
    )
    _dispatch_on_commit(created)
    return len(created)


def _start_sql(customer_id, patient_ids: list[str], bulk_request_id) -> list:
    """PostgreSQL: the same start as one INSERT ... SELECT: the customer's patients among `patient_ids`
    (an array parameter), minus conflicts; returns the ids created."""
    now = timezone.now()
    not_processing = (
        ""
        if bulk_request_id is not None
        else "AND NOT EXISTS (SELECT 1 FROM docqueries_documentquery AS q WHERE q.patient_id = p.id AND q.status = %s)"
    )
    with bound_cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO docqueries_documentquery
                (id, customer_id, patient_id, bulk_request_id, status, started_at, documents, attempts,
                 next_attempt_at, error)
            SELECT gen_random_uuid(), p.customer_id, p.id, %s, %s, %s, '[]'::jsonb, 0, %s, ''
            FROM unnest(%s::uuid[]) AS wanted(id)
            -- OFFSET 0 keeps this one primary-key lookup per wanted id: on fresh tables (stale statistics)
            -- the planner would otherwise scan all of the customer's patients.
            JOIN LATERAL (
                SELECT id, customer_id FROM patients_patient WHERE id = wanted.id AND customer_id = %s OFFSET 0
            ) AS p ON true
            WHERE true {not_processing}
            ORDER BY p.id
            ON CONFLICT DO NOTHING
            RETURNING id
            """,
            [
                bulk_request_id,
                QueryStatus.PROCESSING,
                now,
                now,
                patient_ids,
                customer_id,
                *([] if bulk_request_id is not None else [QueryStatus.PROCESSING]),
            ],
        )
        return [row[0] for row in cursor.fetchall()]


def _batches(ids: list, size: int = DISPATCH_BATCH_SIZE) -> list[list[str]]:
    ids = [str(query_id) for query_id in ids]
    return [ids[index : index + size] for index in range(0, len(ids), size)]


def _dispatch_on_commit(query_ids: list, *, delay_seconds: float = 0.0) -> None:
    from docqueries import tasks

    batches = _batches(query_ids)
    if not batches:
        return
    delay_ms = int(math.ceil(delay_seconds * 1000)) if delay_seconds > 0 else None

    def send() -> None:
        for batch in batches:
            if delay_ms:
                tasks.document_queries_run.send_with_options(args=(batch,), delay=delay_ms)
            else:
                tasks.document_queries_run.send(batch)

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
                message_type=WEBHOOK_TYPE,
                request_id=str(query.id),
                data={"patients": [_webhook_patient(query, status=status, documents=documents)]},
            )
    return bool(finished)


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


# --- Sweep ----------------------------------------------------------------------------------------------


def document_query_sweep() -> None:
    """Scheduler job: resumes processing queries left past their `next_attempt_at` (an actor message lost, a
    worker died mid-call). Each is made due now and re-dispatched; the claim makes duplicates harmless, and
    the grace period keeps the sweeper from re-sending what the fast path is about to do."""
    now = timezone.now()
    with transaction.atomic():
        stuck = list(
            DocumentQuery.objects.select_for_update(skip_locked=True)
            .filter(status=QueryStatus.PROCESSING, next_attempt_at__lte=now - SWEEP_GRACE)
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:SWEEP_BATCH_SIZE]
        )
        if not stuck:
            return
        DocumentQuery.objects.filter(id__in=stuck).update(next_attempt_at=now)
        _dispatch_on_commit(stuck)
    logger.info("document query sweep resumed %s queries", len(stuck))
