"""Delivery (SPEC §6): at-least-once, only in `webhooks` queue actors (their own worker threads, never the
scheduler's loop nor the threads of imports).

A customer's messages are delivered by its *deliverers*: a deliverer leases one of the customer's delivery
slots (as many as the customer's adaptive concurrency), then takes the customer's due messages one after the
other, lane by lane (the lane the caller chose; a lower one first), oldest due first, over a kept-alive
connection, and gives its worker thread back after DELIVERER_MESSAGES attempts or DELIVERER_SECONDS: it is
queued again behind the other customers' deliverers. So one customer's backlog, however large, puts at most
its few deliverers in the queue, never one queue message per webhook, and another customer's first message
waits for a few deliverer turns at most (fair on every lane).

Creating messages wakes the customer (on commit): a deliverer is queued for each free slot not already
queued. The scheduler job `webhook_deliver_due` wakes every customer with due messages (retries, deliverers
lost with their worker). Whoever delivers claims the message with one conditional UPDATE that moves
`next_attempt_at` past a lease, so two deliverers never send the same attempt. Each attempt has a hard
wall-clock deadline and waits for earlier messages of its request when the caller asked for order.

Concurrency per customer adapts to the receiver, AIMD-style: every answer within WEBHOOK_SLOW_SECONDS adds
1/c to the customer's concurrency c (about one more slot per c fast answers), a slower answer or a failure
halves it; c stays within [WEBHOOK_MIN_CONCURRENT_PER_CUSTOMER, WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER]."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone

from metriport_bulk.lib.bulkdb import due_by
from metriport_bulk.lib.http import (
    Deadline,
    DeadlineExceeded,
    ResolutionTimeout,
    UnsafeUrlError,
    guarded_session,
    kept_session,
)
from metriport_bulk.lib.sending import send_or_log
from webhooks import schedule, signing
from webhooks.models import DeliveryAttempt, DeliverySlot, MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.services import dispatch
from webhooks.types import Id

logger = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 64 * 1024
# A deliverer gives its worker thread back (and is queued again, behind the other customers') after this many
# attempts or this long, whichever comes first.
DELIVERER_MESSAGES = 200
DELIVERER_SECONDS = 1.0
# Messages a deliverer claims at once (one transaction) and then sends one after the other; those its turn
# leaves unsent are handed back at once.
DELIVERER_CLAIM = 20
# Concurrency of a customer whose receiver has not answered yet.
INITIAL_CONCURRENCY = 2.0


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
    """Messages free to be sent now as far as order goes: an `ordered` message of a request waits while an
    earlier ordered one of the same request is undelivered (pending or retrying), so `processing` always
    precedes `completed`/`failed` at the receiver, whatever the threads and retries. Messages of no request,
    and those their caller did not order, have no order among themselves."""
    earlier_undelivered = WebhookMessage.objects.filter(
        customer_id=OuterRef("customer_id"),
        request_id=OuterRef("request_id"),
        status=MessageStatus.PENDING,
        ordered=True,
        created_at__lt=OuterRef("created_at"),
    )
    # Q | Exists is a Q at runtime; django-stubs types Q.__or__ for a Q only.
    return Q(request_id="") | Q(ordered=False) | ~Exists(earlier_undelivered)  # type: ignore[return-value]


def _due(customer_id: Id, *, now: datetime) -> QuerySet[WebhookMessage]:
    """The customer's messages that may be attempted now, in delivery order (lane, then oldest due)."""
    return (
        WebhookMessage.objects.filter(customer_id=customer_id, status=MessageStatus.PENDING, next_attempt_at__lte=now)
        .filter(_in_order())
        .order_by("lane", "next_attempt_at", "created_at")
    )


def _claim(message_id: Id, *, now: datetime) -> ClaimedAttempt | None:
    """Takes the next attempt of a due message (one conditional UPDATE); None when not due, taken, or
    waiting for an earlier message of its request."""
    claimed = (
        WebhookMessage.objects.filter(id=message_id, status=MessageStatus.PENDING, next_attempt_at__lte=now)
        .filter(_in_order())
        .update(next_attempt_at=now + _lease(), attempts=F("attempts") + 1, last_attempt_at=now)
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


def _claim_batch(customer_id: Id, *, limit: int) -> list[ClaimedAttempt]:
    """Claims up to `limit` of the customer's next due messages (lane, then oldest due) in one transaction,
    skipping those another deliverer of the customer is claiming at the same moment (PostgreSQL's SKIP LOCKED;
    SQLite serializes writers anyway). The claim's lease end carries a random microsecond of this call's own,
    so the rows it claimed are the ones holding it. Empty when nothing is due."""
    now = timezone.now()
    lease_until = now + _lease() + timedelta(microseconds=random.randrange(1, 999_999))
    with transaction.atomic():
        ids = list(_due(customer_id, now=now).select_for_update(skip_locked=True).values_list("id", flat=True)[:limit])
        if not ids:
            return []
        WebhookMessage.objects.filter(due_by("next_attempt_at", now), id__in=ids, status=MessageStatus.PENDING).update(
            next_attempt_at=lease_until, attempts=F("attempts") + 1, last_attempt_at=now
        )
        mine = {
            message_id: (attempts, bytes(body))
            for message_id, attempts, body in WebhookMessage.objects.filter(
                id__in=ids, next_attempt_at=lease_until
            ).values_list("id", "attempts", "body")
        }
        endpoint = WebhookEndpoint.objects.filter(customer_id=customer_id).first()
        if endpoint is None or not endpoint.url:
            # The customer removed the URL: nothing to send to. Support can redeliver once a URL is set again.
            WebhookMessage.objects.filter(id__in=list(mine), next_attempt_at=lease_until).update(
                status=MessageStatus.FAILED, next_attempt_at=None, last_error="no webhook URL is configured"
            )
            return []
    return [
        ClaimedAttempt(
            message_id, endpoint.customer_id, mine[message_id][0], endpoint.url, endpoint.key, mine[message_id][1]
        )
        for message_id in ids
        if message_id in mine
    ]


def _unclaim(claimed: list[ClaimedAttempt]) -> None:
    """Hands back claimed messages that were not attempted (the deliverer's turn ended first): due now, their
    attempt count as before."""
    if not claimed:
        return
    mine = Q()
    for attempt in claimed:
        mine |= Q(id=attempt.message_id, attempts=attempt.number)
    try:
        WebhookMessage.objects.filter(mine, status=MessageStatus.PENDING).update(
            attempts=F("attempts") - 1, next_attempt_at=timezone.now()
        )
    except Exception:  # noqa: BLE001 - best effort; their lease runs out and the scheduler takes them anyway
        logger.warning("webhook: %s claimed messages could not be handed back", len(claimed))


def _request_error(exc: Exception) -> str:
    """A short description of a failed request, never the URL's path or query (could hold a token) nor
    anything from the receiver's body."""
    if isinstance(exc, ResolutionTimeout):  # a failure to retry, not a refusal of the URL
        return str(exc)[:300]
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
    *, url: str, key: str, body: bytes, message_id: str, read_answer: bool = False, keep_alive: bool = False
) -> tuple[bytes, AttemptOutcome]:
    """One signed POST of `body` (these exact bytes, no redirects, SSRF-guarded), all of it (connect, headers
    and the answer's body) within WEBHOOK_TIMEOUT_SECONDS of wall-clock time: a receiver that drips its
    answer is cut off at the deadline and the attempt is a timeout. `keep_alive`: over this thread's kept
    session of the endpoint (deliveries), else a session of its own (the ping). Returns the answer's first
    bytes (only when `read_answer`, for the ping) and the outcome."""
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
    session = kept_session(url=url) if keep_alive else guarded_session()
    with contextlib.ExitStack() as stack, Deadline(settings.WEBHOOK_TIMEOUT_SECONDS) as deadline:
        if not keep_alive:
            stack.enter_context(session)
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
            # A lookup cut at the deadline says so (its expiry may have fired meanwhile): "could not resolve".
            timed_out = deadline.expired.is_set() and not isinstance(exc, ResolutionTimeout)
            error = _timeout_error() if timed_out else _request_error(exc)
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
    _, outcome = post(
        url=claimed.url, key=claimed.key, body=claimed.body, message_id=str(claimed.message_id), keep_alive=True
    )
    return outcome


def _fast(outcome: AttemptOutcome) -> bool:
    """A delivery answered within WEBHOOK_SLOW_SECONDS: the receiver keeps up."""
    return outcome.succeeded and outcome.latency_ms <= settings.WEBHOOK_SLOW_SECONDS * 1000


def _record(claimed: ClaimedAttempt, outcome: AttemptOutcome) -> None:
    _record_many([(claimed, outcome)])


def _record_many(results: list[tuple[ClaimedAttempt, AttemptOutcome]]) -> None:
    """Logs the attempts, moves each message on (delivered, retry later, or failed at the window's end) and
    adapts the customer's concurrency to the answers, in one transaction. A message update is conditional on
    the attempt number, so a slow attempt whose lease expired never overwrites a newer attempt's result."""
    if not results:
        return
    now = timezone.now()
    customer_id = results[0][0].customer_id
    with transaction.atomic():
        DeliveryAttempt.objects.bulk_create(
            [
                DeliveryAttempt(
                    message_id=claimed.message_id,
                    number=claimed.number,
                    started_at=outcome.started_at,
                    succeeded=outcome.succeeded,
                    status_code=outcome.status_code,
                    latency_ms=outcome.latency_ms,
                    error=outcome.error,
                )
                for claimed, outcome in results
            ]
        )
        delivered_by_code: dict[int | None, Q] = {}
        for claimed, outcome in results:
            if outcome.succeeded:
                mine = Q(id=claimed.message_id, attempts=claimed.number)
                code = outcome.status_code
                delivered_by_code[code] = delivered_by_code[code] | mine if code in delivered_by_code else mine
        for code, mine in delivered_by_code.items():
            WebhookMessage.objects.filter(mine, status=MessageStatus.PENDING).update(
                status=MessageStatus.DELIVERED,
                delivered_at=now,
                next_attempt_at=None,
                last_status_code=code,
                last_error="",
            )
        failed = [(claimed, outcome) for claimed, outcome in results if not outcome.succeeded]
        for claimed, outcome in failed:
            mine_qs = WebhookMessage.objects.filter(
                id=claimed.message_id, attempts=claimed.number, status=MessageStatus.PENDING
            )
            current = mine_qs.values("failures", "give_up_at").first()
            if current is not None:
                failures = current["failures"] + 1
                retry_at = schedule.next_attempt_at(failures=failures, now=now, give_up_at=current["give_up_at"])
                mine_qs.update(
                    failures=failures,
                    status=MessageStatus.PENDING if retry_at else MessageStatus.FAILED,
                    next_attempt_at=retry_at,
                    last_status_code=outcome.status_code,
                    last_error=outcome.error,
                )
        fast = sum(1 for _, outcome in results if _fast(outcome))
        endpoint = WebhookEndpoint.objects.filter(customer_id=customer_id)
        if failed:
            endpoint.update(last_failure_at=now, last_error=failed[-1][1].error, concurrency=_adapted(fast=0))
        elif fast < len(results):  # delivered, but some slowly
            endpoint.update(last_success_at=now, concurrency=_adapted(fast=0))
        else:
            endpoint.update(last_success_at=now, concurrency=_adapted(fast=fast))
    for claimed, outcome in failed:
        logger.info("webhook %s attempt %s failed: %s", claimed.message_id, claimed.number, outcome.error)


# --- Adaptive concurrency ---------------------------------------------------------------------------------


def concurrency_bounds() -> tuple[float, float]:
    """(lowest, highest) concurrency of a customer, from the settings (at least one delivery, and the upper
    bound never below the lower one)."""
    low = max(1, int(settings.WEBHOOK_MIN_CONCURRENT_PER_CUSTOMER))
    return float(low), float(max(low, int(settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER)))


def _adapted(*, fast: int) -> Least:
    """The customer's next concurrency as one SQL expression (no read-modify-write race between deliverers):
    c + n/c after n fast answers, c / 2 after a slow one or a failure (once for a deliverer's batch), within the
    bounds."""
    low, high = concurrency_bounds()
    current = Coalesce(F("concurrency"), Value(min(max(INITIAL_CONCURRENCY, low), high)))
    changed = current + Value(float(fast)) / current if fast else current / Value(2.0)
    return Least(Value(high), Greatest(Value(low), changed))


def customer_concurrency(customer_id: Id) -> int:
    """How many deliveries the customer's receiver is given at once now (whole slots of its concurrency)."""
    low, high = concurrency_bounds()
    stored = WebhookEndpoint.objects.filter(customer_id=customer_id).values_list("concurrency", flat=True).first()
    value = stored if stored is not None else INITIAL_CONCURRENCY
    return int(math.floor(min(max(value, low), high) + 1e-9))


# --- Slots ------------------------------------------------------------------------------------------------


def _free() -> Q:
    now = timezone.now()
    return Q(leased_until__isnull=True) | Q(leased_until__lte=now)


def _slots_ensure(customer_id: Id, count: int) -> None:
    """The customer's slot rows 0..count-1 exist (made on first use)."""
    if DeliverySlot.objects.filter(customer_id=customer_id, number__lt=count).count() < count:
        DeliverySlot.objects.bulk_create(
            [DeliverySlot(customer_id=customer_id, number=number) for number in range(count)], ignore_conflicts=True
        )


def _slot_lease(*, customer_id: Id, number: int, message_id: Id | None = None) -> bool:
    """Leases slot `number` of the customer if it is free (one conditional UPDATE), clearing its queued mark."""
    return bool(
        DeliverySlot.objects.filter(customer_id=customer_id, number=number)
        .filter(_free())
        .update(message_id=message_id, leased_until=timezone.now() + _lease(), queued_at=None)
    )


def _slot_take(*, customer_id: Id, message_id: Id) -> int | None:
    """Leases any free slot of the customer within its concurrency; None when all are busy."""
    count = customer_concurrency(customer_id)
    _slots_ensure(customer_id, count)
    free = DeliverySlot.objects.filter(customer_id=customer_id, number__lt=count).filter(_free())
    for number in free.order_by("number").values_list("number", flat=True):
        if _slot_lease(customer_id=customer_id, number=number, message_id=message_id):
            return number
    return None


def _slot_release(*, customer_id: Id, number: int) -> None:
    try:
        DeliverySlot.objects.filter(customer_id=customer_id, number=number).update(message_id=None, leased_until=None)
    except Exception:  # noqa: BLE001 - best effort; the lease runs out anyway
        logger.warning("webhook slot %s of %s: could not be freed", number, customer_id)


# --- Deliverers -------------------------------------------------------------------------------------------


def _next_lane(customer_id: Id) -> int | None:
    """The lane of the customer's next due message, or None when nothing is due (an index range scan)."""
    lane: int | None = _due(customer_id, now=timezone.now()).values_list("lane", flat=True).first()
    return lane


def webhook_customer_wake(*, customer_id: Id) -> list[int]:
    """Queues a deliverer for each of the customer's free slots (within its concurrency) that has none queued
    (or only one queued a lease period ago, which may have been lost), if anything of the customer is due; on
    the queue of the lane of its next due message. Performs no HTTP. Returns the slots queued."""
    lane = _next_lane(customer_id)
    if lane is None:
        return []
    count = customer_concurrency(customer_id)
    _slots_ensure(customer_id, count)
    now = timezone.now()
    # No more deliverers than due messages (up to the concurrency): one message wakes one deliverer.
    wanted = len(_due(customer_id, now=now).values_list("id", flat=True)[:count])
    not_queued = Q(queued_at__isnull=True) | Q(queued_at__lt=now - _lease())
    idle = DeliverySlot.objects.filter(customer_id=customer_id, number__lt=count).filter(_free()).filter(not_queued)
    queued: list[int] = []
    for number in idle.order_by("number").values_list("number", flat=True)[:wanted]:
        if (
            DeliverySlot.objects.filter(customer_id=customer_id, number=number)
            .filter(_free())
            .filter(not_queued)
            .update(queued_at=now)
        ):
            queued.append(number)
    sent = send_or_log(
        lambda: dispatch.send([(customer_id, number) for number in queued], lane=lane),
        what=f"{len(queued)} deliverer(s) of customer {customer_id}",
    )
    if not sent:
        # The broker refused: the slots are free to be queued again by the next wake (the scheduler's
        # webhook_deliver_due) instead of waiting out a lease for deliverers that never went out.
        DeliverySlot.objects.filter(customer_id=customer_id, number__in=queued, queued_at=now).update(queued_at=None)
        return []
    return queued


def webhook_customer_deliver(*, customer_id: Id, slot: int) -> int:
    """A deliverer (the actor): leases the customer's slot `slot` and delivers the customer's due messages one
    after the other until none is due, the slot falls outside the customer's concurrency, or its turn is over
    (DELIVERER_MESSAGES, DELIVERER_SECONDS); then frees the slot and wakes the customer again (queued behind
    the others' deliverers if more is due). Returns the number of attempts made; 0 when the slot was busy."""
    if not _slot_lease(customer_id=customer_id, number=slot):
        if DeliverySlot.objects.filter(customer_id=customer_id, number=slot).exists():
            return 0
        _slots_ensure(customer_id, slot + 1)
        if not _slot_lease(customer_id=customer_id, number=slot):
            return 0
    attempts = 0
    started = time.monotonic()

    def turn_over() -> bool:
        return attempts >= DELIVERER_MESSAGES or time.monotonic() - started >= DELIVERER_SECONDS

    try:
        while not turn_over():
            if attempts and slot >= customer_concurrency(customer_id):
                break  # the receiver slowed down: this slot retires until the concurrency grows again
            batch = _claim_batch(customer_id, limit=min(DELIVERER_CLAIM, DELIVERER_MESSAGES - attempts))
            if not batch:
                break
            results: list[tuple[ClaimedAttempt, AttemptOutcome]] = []
            try:
                for claimed in batch:
                    if results and (turn_over() or not _fast(results[-1][1])):
                        break  # the turn is over, or the receiver slows down: see to the concurrency first
                    results.append((claimed, _attempt(claimed)))
                    attempts += 1
            finally:
                _unclaim(batch[len(results) :])
                try:
                    _record_many(results)
                except Exception:
                    # The database failed under us: hand the messages back now so the actor's retry (or the
                    # scheduler) takes them again without waiting for the lease. At-least-once: sent once more.
                    for claimed, _ in results:
                        _release_quietly(claimed)
                    raise
            if not results[-1][1].succeeded:
                break  # a failing receiver: the thread goes back to the queue, this customer's turn is over
    finally:
        _slot_release(customer_id=customer_id, number=slot)
    # Whatever came due meanwhile (or is left of a turn that ended) gets a deliverer: the slot is free again.
    webhook_customer_wake(customer_id=customer_id)
    return attempts


def _deliver_claimed(claimed: ClaimedAttempt) -> AttemptOutcome:
    outcome = _attempt(claimed)
    try:
        _record(claimed, outcome)
    except Exception:
        # The database failed under us: hand the message back now so the actor's retry (or the scheduler)
        # takes it again without waiting for the lease. At-least-once: it may be sent once more.
        _release_quietly(claimed)
        raise
    return outcome


def webhook_message_deliver(*, message_id: Id) -> bool | None:
    """One attempt of one message now, if it is due (support's synchronous redelivery, tests). True/False:
    delivered or not; None: not due, already delivered, taken by another deliverer, waiting for an earlier
    message of its request, or deferred because every slot of its customer is busy (a deferral is no attempt
    and no failure: the message stays due and the customer's deliverers take it)."""
    customer_id = (
        WebhookMessage.objects.filter(id=message_id, status=MessageStatus.PENDING)
        .values_list("customer_id", flat=True)
        .first()
    )
    if customer_id is None:
        return None
    slot = _slot_take(customer_id=customer_id, message_id=message_id)
    if slot is None:
        return None
    try:
        claimed = _claim(message_id, now=timezone.now())
        if claimed is None:
            return None
        outcome = _deliver_claimed(claimed)
    finally:
        _slot_release(customer_id=customer_id, number=slot)
    webhook_customer_wake(customer_id=customer_id)
    return outcome.succeeded


def _release_quietly(claimed: ClaimedAttempt) -> None:
    try:
        WebhookMessage.objects.filter(
            id=claimed.message_id, attempts=claimed.number, status=MessageStatus.PENDING
        ).update(next_attempt_at=timezone.now())
    except Exception:  # noqa: BLE001 - best effort; the lease runs out and the scheduler retries anyway
        logger.warning("webhook %s: could not release its claim", claimed.message_id)


def webhook_deliver_due() -> list[tuple[uuid.UUID, int]]:
    """Scheduler job: wakes every customer with an endpoint (a URL or one removed) that has something due
    (retries, messages whose deliverer was lost with its worker, attempts whose worker died). One indexed probe
    per customer, never a scan of the messages. Never performs HTTP itself: the `webhooks` workers do. Returns (customer, slot) of
    the deliverers queued."""
    woken: list[tuple[uuid.UUID, int]] = []
    customers = WebhookEndpoint.objects.order_by("customer_id").values_list("customer_id", flat=True)
    for customer_id in customers.iterator():
        woken += [(customer_id, slot) for slot in webhook_customer_wake(customer_id=customer_id)]
    return woken
