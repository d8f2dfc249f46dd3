"""Delivery (SPEC §6): at-least-once, only in `webhooks` queue actors (their own worker threads, never the
scheduler's loop nor the threads of imports): the actor sent on commit is the fast path; the scheduler job
`webhook_deliver_due` only queues whatever is due (retries, lost actor messages, deliveries whose worker died,
deferred ones). Whoever delivers first claims the message with one conditional UPDATE that moves
`next_attempt_at` past a lease, so two deliverers never send the same attempt. Each attempt has a hard
wall-clock deadline, holds one of the customer's few delivery slots (so a slow endpoint uses a bounded share
of the workers), and waits for earlier messages of its bulk request."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from metriport_bulk.lib.http import Deadline, DeadlineExceeded, UnsafeUrlError, guarded_session
from webhooks import schedule, signing, types
from webhooks.models import DeliveryAttempt, DeliverySlot, MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.services import dispatch
from webhooks.services.outbox import Id

logger = logging.getLogger(__name__)

DUE_BATCH_SIZE = 100
MAX_ANSWER_BYTES = 64 * 1024


def _lease() -> timedelta:
    """How long a claimed attempt may take before someone else may try again (covers connect + read)."""
    return timedelta(seconds=2 * settings.WEBHOOK_TIMEOUT_SECONDS + 30)


# --- Delivery -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimedAttempt:
    """Everything one attempt needs, read from the database before the HTTP call (which touches no DB)."""

    message_id: uuid.UUID
    customer_id: uuid.UUID
    number: int
    url: str
    key: str
    body: bytes


@dataclass(frozen=True)
class AttemptOutcome:
    started_at: datetime
    succeeded: bool
    status_code: int | None
    latency_ms: int
    error: str


def _in_order() -> Q:
    """Messages free to be sent now as far as order goes: for one bulk request, a message waits while an earlier
    one of the same request is undelivered (pending or retrying), so `processing` always precedes
    `completed`/`failed` at the receiver, whatever the threads and retries. Messages of no request
    (Document Query results) have no order among themselves."""
    earlier_undelivered = WebhookMessage.objects.filter(
        customer_id=OuterRef("customer_id"),
        request_id=OuterRef("request_id"),
        status=MessageStatus.PENDING,
        created_at__lt=OuterRef("created_at"),
    )
    # Q | Exists is a Q at runtime; django-stubs types Q.__or__ for a Q only.
    return Q(request_id="") | ~Exists(earlier_undelivered)  # type: ignore[return-value]


def _claim(message_id: Id, *, now: datetime) -> ClaimedAttempt | None:
    """Takes the next attempt of a due message (one conditional UPDATE); None when not due, taken, or
    waiting for an earlier message of its bulk request."""
    claimed = (
        WebhookMessage.objects.filter(id=message_id, status=MessageStatus.PENDING, next_attempt_at__lte=now)
        .filter(_in_order())
        .update(next_attempt_at=now + _lease(), attempts=F("attempts") + 1, last_attempt_at=now, enqueued_at=None)
    )
    if not claimed:
        return None
    message = WebhookMessage.objects.only("id", "customer_id", "attempts", "body").get(id=message_id)
    endpoint = WebhookEndpoint.objects.filter(customer_id=message.customer_id).first()
    if endpoint is None or not endpoint.url:
        # The customer removed the URL: nothing to send to. Support can redeliver once a URL is set again.
        WebhookMessage.objects.filter(id=message_id, attempts=message.attempts).update(
            status=MessageStatus.FAILED, next_attempt_at=None, last_error="no webhook URL is configured"
        )
        return None
    return ClaimedAttempt(
        message_id=message.id,
        customer_id=message.customer_id,
        number=message.attempts,
        url=endpoint.url,
        key=endpoint.key,
        body=bytes(message.body),
    )


def _request_error(exc: Exception) -> str:
    """A short description of a failed request, never the URL's path or query (could hold a token) nor
    anything from the receiver's body."""
    if isinstance(exc, UnsafeUrlError):
        return f"refused: {exc}"[:300]
    if isinstance(exc, requests.Timeout | DeadlineExceeded):
        return _timeout_error()
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc).lower()
        if "refused" in text:
            return "connection refused"
        if "name or service" in text or "resolution" in text or "getaddrinfo" in text:
            return "host name could not be resolved"
        return "connection error"
    return f"request error ({type(exc).__name__})"


def post(
    *, url: str, key: str, body: bytes, message_id: str, read_answer: bool = False
) -> tuple[bytes, AttemptOutcome]:
    """One signed POST of `body` (these exact bytes, no redirects, SSRF-guarded), all of it (connect, headers
    and the answer's body) within WEBHOOK_TIMEOUT_SECONDS of wall-clock time: a receiver that drips its
    answer is cut off at the deadline and the attempt is a timeout. Returns the answer's first bytes (only
    when `read_answer`, for the ping) and the outcome."""
    started_at = timezone.now()
    headers = {
        "content-type": "application/json",
        "user-agent": "metriport-bulk",
        **signing.signature_headers(
            body=body,
            key=key,
            message_id=message_id,
            timestamp=int(time.time()),
            standard=settings.WEBHOOK_STANDARD_HEADERS,
        ),
    }
    clock = time.monotonic()
    answer = b""
    code = None
    with guarded_session() as session, Deadline(settings.WEBHOOK_TIMEOUT_SECONDS) as deadline:
        try:
            with session.post(
                url,
                data=body,
                headers=headers,
                timeout=deadline.timeout(),
                allow_redirects=False,
                stream=True,
            ) as response:
                code = response.status_code
                # The answer is read (bounded) under the same deadline: the attempt is over only once the
                # receiver has finished answering, or the time is up.
                answer = _read_bounded(response, MAX_ANSWER_BYTES + 1, deadline)
                latency = int((time.monotonic() - clock) * 1000)
        except (requests.RequestException, UnsafeUrlError, DeadlineExceeded, OSError) as exc:
            latency = int((time.monotonic() - clock) * 1000)
            error = _timeout_error() if deadline.expired.is_set() else _request_error(exc)
            return b"", AttemptOutcome(started_at, False, code, latency, error)
    if 200 <= code < 300:
        return (answer if read_answer else b""), AttemptOutcome(started_at, True, code, latency, "")
    error = f"HTTP {code}: redirects are not followed" if 300 <= code < 400 else f"HTTP {code}"
    return b"", AttemptOutcome(started_at, False, code, latency, error)


def _timeout_error() -> str:
    return f"timeout after {settings.WEBHOOK_TIMEOUT_SECONDS:g}s"


def _read_bounded(response: requests.Response, limit: int, deadline: Deadline) -> bytes:
    """At most `limit` bytes of the body, in small reads, checking the deadline between them: a receiver can
    make us read neither an endless nor a slow answer."""
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=1024):
        deadline.check()
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    deadline.check()
    return b"".join(chunks)[:limit]


def _attempt(claimed: ClaimedAttempt) -> AttemptOutcome:
    _, outcome = post(url=claimed.url, key=claimed.key, body=claimed.body, message_id=str(claimed.message_id))
    return outcome


def _record(claimed: ClaimedAttempt, outcome: AttemptOutcome) -> None:
    """Logs the attempt and moves the message on: delivered, retry later, or failed at the window's end.
    The message update is conditional on the attempt number, so a slow attempt whose lease expired never
    overwrites a newer attempt's result."""
    now = timezone.now()
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            message_id=claimed.message_id,
            number=claimed.number,
            started_at=outcome.started_at,
            succeeded=outcome.succeeded,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
        )
        mine = WebhookMessage.objects.filter(
            id=claimed.message_id, attempts=claimed.number, status=MessageStatus.PENDING
        )
        if outcome.succeeded:
            mine.update(
                status=MessageStatus.DELIVERED,
                delivered_at=now,
                next_attempt_at=None,
                last_status_code=outcome.status_code,
                last_error="",
            )
            WebhookEndpoint.objects.filter(customer_id=claimed.customer_id).update(last_success_at=now)
            return
        current = mine.values("failures", "give_up_at").first()
        if current is not None:
            failures = current["failures"] + 1
            retry_at = schedule.next_attempt_at(failures=failures, now=now, give_up_at=current["give_up_at"])
            mine.update(
                failures=failures,
                status=MessageStatus.PENDING if retry_at else MessageStatus.FAILED,
                next_attempt_at=retry_at,
                last_status_code=outcome.status_code,
                last_error=outcome.error,
            )
        WebhookEndpoint.objects.filter(customer_id=claimed.customer_id).update(
            last_failure_at=now, last_error=outcome.error
        )
    logger.info("webhook %s attempt %s failed: %s", claimed.message_id, claimed.number, outcome.error)


def _slots() -> int:
    return max(1, int(settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER))


def _slot_take(*, customer_id: Id, message_id: Id, now: datetime) -> int | None:
    """Leases one of the customer's free delivery slots (a conditional UPDATE per slot); None when all are
    busy. The slot rows are created on first use."""
    free = Q(leased_until__isnull=True) | Q(leased_until__lte=now)
    for attempt in range(2):
        for number in range(_slots()):
            taken = (
                DeliverySlot.objects.filter(customer_id=customer_id, number=number)
                .filter(free)
                .update(message_id=message_id, leased_until=now + _lease())
            )
            if taken:
                return number
        if attempt or DeliverySlot.objects.filter(customer_id=customer_id, number__lt=_slots()).count() >= _slots():
            return None
        DeliverySlot.objects.bulk_create(
            [DeliverySlot(customer_id=customer_id, number=number) for number in range(_slots())],
            ignore_conflicts=True,
        )
    return None


def _slot_release(*, customer_id: Id, number: int, message_id: Id) -> None:
    try:
        DeliverySlot.objects.filter(customer_id=customer_id, number=number, message_id=message_id).update(
            message_id=None, leased_until=None
        )
    except Exception:  # noqa: BLE001 - best effort; the lease runs out anyway
        logger.warning("webhook %s: could not free its delivery slot", message_id)


def _status_waiting(customer_id: Id, *, now: datetime) -> bool:
    """Whether a bulk request status message of the customer is due and free to go (in order)."""
    return (
        WebhookMessage.objects.filter(
            customer_id=customer_id,
            status=MessageStatus.PENDING,
            message_type=types.BULK_PATIENT_CREATE,
            next_attempt_at__lte=now,
        )
        .filter(_in_order())
        .exists()
    )


def webhook_message_deliver(*, message_id: Id) -> bool | None:
    """One attempt of one message if it is due (the actor). True/False: delivered or not; None: not due,
    already delivered, taken by another deliverer, waiting for an earlier message of its request, or
    deferred because the customer already has WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER deliveries in flight or
    (for a message that is no bulk request status) a status of its bulk requests is due: that goes first
    (a deferral is no attempt and no failure: the message stays due and is queued again)."""
    now = timezone.now()
    found = (
        WebhookMessage.objects.filter(id=message_id, status=MessageStatus.PENDING)
        .values_list("customer_id", "message_type")
        .first()
    )
    if found is None:
        return None
    customer_id, message_type = found
    if message_type != types.BULK_PATIENT_CREATE and _status_waiting(customer_id, now=now):
        # The customer's next slot goes to its bulk request's status: this one is queued again after it.
        WebhookMessage.objects.filter(id=message_id, status=MessageStatus.PENDING).update(enqueued_at=None)
        return None
    slot = _slot_take(customer_id=customer_id, message_id=message_id, now=now)
    if slot is None:
        WebhookMessage.objects.filter(id=message_id, status=MessageStatus.PENDING).update(enqueued_at=None)
        return None
    try:
        claimed = _claim(message_id, now=now)
        if claimed is None:
            WebhookMessage.objects.filter(id=message_id, status=MessageStatus.PENDING).update(enqueued_at=None)
            return None
        outcome = _attempt(claimed)
        try:
            _record(claimed, outcome)
        except Exception:
            # The database failed under us: hand the message back now so the actor's retry (or the scheduler)
            # takes it again without waiting for the lease. At-least-once: it may be sent once more.
            _release_quietly(claimed)
            raise
    finally:
        _slot_release(customer_id=customer_id, number=slot, message_id=message_id)
    # The slot is free: hand it on to the customer's next due message (the successor of this one in its
    # bulk request included) without waiting for the scheduler's next round.
    webhook_enqueue_due(customer_id=customer_id)
    return outcome.succeeded


def _release_quietly(claimed: ClaimedAttempt) -> None:
    try:
        WebhookMessage.objects.filter(
            id=claimed.message_id, attempts=claimed.number, status=MessageStatus.PENDING
        ).update(next_attempt_at=timezone.now())
    except Exception:  # noqa: BLE001 - best effort; the lease runs out and the scheduler retries anyway
        logger.warning("webhook %s: could not release its claim", claimed.message_id)


def webhook_enqueue_due(*, customer_id: Id | None = None, limit: int | None = None) -> list[uuid.UUID]:
    """Queues a delivery (a `webhooks` queue message) for due messages: pending, `next_attempt_at` come, in
    order within their bulk request, and not queued in the last lease period (a queued message that was
    lost is queued again after it). At most WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER per customer, counting those
    already queued or in flight, so one customer's backlog never floods the queue ahead of the others. Performs no HTTP.
    Returns the ids queued."""
    now = timezone.now()
    stale = now - _lease()
    not_queued = Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale)
    pending = WebhookMessage.objects.filter(status=MessageStatus.PENDING)
    if customer_id is not None:
        pending = pending.filter(customer_id=customer_id)
    queued_per_customer = dict(
        pending.filter(enqueued_at__gte=stale)
        .values("customer_id")
        .annotate(n=Count("id"))
        .values_list("customer_id", "n")
    )
    slots_busy = DeliverySlot.objects.filter(leased_until__gt=now)
    if customer_id is not None:
        slots_busy = slots_busy.filter(customer_id=customer_id)
    for owner, busy in slots_busy.values("customer_id").annotate(n=Count("id")).values_list("customer_id", "n"):
        queued_per_customer[owner] = queued_per_customer.get(owner, 0) + busy
    ready = pending.filter(next_attempt_at__lte=now).filter(not_queued).filter(_in_order())
    # A bulk request's own status (processing, completed, failed) goes ahead of the backlog of Document Query
    # results: a customer learns an import is done without waiting for thousands of document-download
    # webhooks to its endpoint to drain first. Within each kind, oldest due first.
    by_due = ("next_attempt_at", "created_at")
    columns = ("id", "customer_id", "message_type")
    due = list(
        ready.filter(message_type=types.BULK_PATIENT_CREATE).order_by(*by_due).values_list(*columns)[:DUE_BATCH_SIZE]
    )
    due += (
        ready.exclude(message_type=types.BULK_PATIENT_CREATE)
        .order_by(*by_due)
        .values_list(*columns)[: DUE_BATCH_SIZE - len(due)]
    )
    cap = limit if limit is not None else _slots()
    picked: list[tuple[uuid.UUID, str]] = []
    for message_id, owner, message_type in due:
        if queued_per_customer.get(owner, 0) >= cap:
            continue
        if (
            WebhookMessage.objects.filter(id=message_id, status=MessageStatus.PENDING)
            .filter(not_queued)
            .update(enqueued_at=now)
        ):
            queued_per_customer[owner] = queued_per_customer.get(owner, 0) + 1
            picked.append((message_id, message_type))
    dispatch.send(picked)
    return [message_id for message_id, _ in picked]


def webhook_deliver_due() -> list[uuid.UUID]:
    """Scheduler job: queues the deliveries that are due (first attempts whose actor message was lost,
    retries, attempts whose worker died, messages deferred by the per-customer cap). Never performs HTTP
    itself: the `webhooks` queue's workers do, so a slow receiver cannot hold up the scheduler's other jobs
    (noticing uploads, expiry, resuming stale work)."""
    return webhook_enqueue_due()
