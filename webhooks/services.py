"""Webhooks (SPEC §4): the outbox, delivery with retries, redelivery, and the customer's URL and key.

An outbox message is stored in the transaction of the state change it reports (`webhook_message_create`),
with its body serialized once. Delivery is at-least-once: the actor sent on commit is the fast path; the
scheduler job `webhook_deliver_due` delivers whatever is due (retries, lost actor messages, deliveries whose
worker died). Whoever delivers first claims the message with one conditional UPDATE that moves
`next_attempt_at` past a lease, so two deliverers never send the same attempt.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from metriport_bulk.lib.http import Deadline, DeadlineExceeded, UnsafeUrlError, check_url, guarded_session
from patients.models import Customer
from webhooks import schedule, signing
from webhooks.models import DeliveryAttempt, MessageStatus, WebhookEndpoint, WebhookMessage

logger = logging.getLogger(__name__)

PING_TYPE = "ping"
DUE_BATCH_SIZE = 100
DELIVERY_THREADS = 8
# A run of the scheduler job stops taking new batches after this long, so other jobs get their turn.
DUE_RUN_SECONDS = 20.0
MAX_ANSWER_BYTES = 64 * 1024


def _lease() -> timedelta:
    """How long a claimed attempt may take before someone else may try again (covers connect + read)."""
    return timedelta(seconds=2 * settings.WEBHOOK_TIMEOUT_SECONDS + 30)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_body(
    *, message_id: uuid.UUID, message_type: str, when: datetime, data: dict, request_id: str | None = None
) -> bytes:
    """The payload's bytes: compact JSON, serialized once; these exact bytes are signed and sent."""
    meta: dict = {"messageId": str(message_id)}
    if request_id is not None:
        meta["requestId"] = str(request_id)
    meta["when"] = _iso(when)
    meta["type"] = message_type
    payload = {"meta": meta, **data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder).encode("utf-8")


# --- Outbox ---------------------------------------------------------------------------------------------


def webhook_message_create(
    *, customer_id, message_type: str, data: dict, request_id: str | None = None
) -> WebhookMessage | None:
    """Stores one outbox message in the caller's transaction and schedules its delivery on commit.

    Builds `{"meta": {"messageId", ["requestId",] "when", "type"}, **data}`. Returns None (stores nothing)
    when the customer has no webhook URL."""
    url = WebhookEndpoint.objects.filter(customer_id=customer_id).values_list("url", flat=True).first()
    if not url:
        return None
    now = timezone.now()
    message_id = uuid.uuid4()
    body = webhook_body(message_id=message_id, message_type=message_type, when=now, data=data, request_id=request_id)
    message = WebhookMessage.objects.create(
        id=message_id,
        customer_id=customer_id,
        message_type=message_type,
        request_id=str(request_id) if request_id is not None else "",
        body=body,
        next_attempt_at=now,
        give_up_at=now + schedule.retry_window(),
    )
    _send_on_commit([message.id])
    return message


def _send_on_commit(message_ids: Iterable) -> None:
    from webhooks import tasks

    ids = [str(message_id) for message_id in message_ids]

    def send() -> None:
        for message_id in ids:
            tasks.webhook_deliver.send(message_id)

    if ids:
        transaction.on_commit(send)


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


def _claim(message_id, *, now: datetime) -> ClaimedAttempt | None:
    """Takes the next attempt of a due message (one conditional UPDATE); None when not due or taken."""
    claimed = WebhookMessage.objects.filter(
        id=message_id, status=MessageStatus.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + _lease(), attempts=F("attempts") + 1, last_attempt_at=now)
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


def _post(
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
    _, outcome = _post(url=claimed.url, key=claimed.key, body=claimed.body, message_id=str(claimed.message_id))
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


def webhook_message_deliver(*, message_id) -> bool | None:
    """One attempt of one message if it is due (the actor's fast path). True/False: delivered or not;
    None: not due, already delivered, or taken by another deliverer."""
    claimed = _claim(message_id, now=timezone.now())
    if claimed is None:
        return None
    outcome = _attempt(claimed)
    try:
        _record(claimed, outcome)
    except Exception:
        # The database failed under us: hand the message back now so the actor's retry (or the scheduler)
        # takes it again without waiting for the lease. At-least-once: it may be sent once more.
        _release_quietly(claimed)
        raise
    return outcome.succeeded


def _release_quietly(claimed: ClaimedAttempt) -> None:
    try:
        WebhookMessage.objects.filter(
            id=claimed.message_id, attempts=claimed.number, status=MessageStatus.PENDING
        ).update(next_attempt_at=timezone.now())
    except Exception:  # noqa: BLE001 - best effort; the lease runs out and the scheduler retries anyway
        logger.warning("webhook %s: could not release its claim", claimed.message_id)


def _deliver_claimed(claimed: list[ClaimedAttempt]) -> list[AttemptOutcome]:
    """The HTTP calls of a batch run in threads (they touch no database); results are recorded here."""
    if not claimed:
        return []
    with ThreadPoolExecutor(max_workers=min(DELIVERY_THREADS, len(claimed)), thread_name_prefix="webhook") as pool:
        outcomes = list(pool.map(_attempt, claimed))
    for item, outcome in zip(claimed, outcomes, strict=True):
        _record(item, outcome)
    return outcomes


def webhook_deliver_due() -> None:
    """Scheduler job: delivers every pending message whose `next_attempt_at` has come (first attempts whose
    actor message was lost, retries, attempts whose worker died), a batch at a time."""
    started = time.monotonic()
    while time.monotonic() - started < DUE_RUN_SECONDS:
        now = timezone.now()
        due = list(
            WebhookMessage.objects.filter(status=MessageStatus.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:DUE_BATCH_SIZE]
        )
        claimed = [item for item in (_claim(message_id, now=now) for message_id in due) if item is not None]
        _deliver_claimed(claimed)
        if len(due) < DUE_BATCH_SIZE:
            return


# --- Redelivery -----------------------------------------------------------------------------------------


def _redeliverable(customer_id=None) -> Q:
    """Failed messages, and pending ones that have failed at least once (waiting for a retry)."""
    query = Q(status=MessageStatus.FAILED) | Q(status=MessageStatus.PENDING, failures__gt=0)
    if customer_id is not None:
        query &= Q(customer_id=customer_id)
    return query


@transaction.atomic
def webhook_redeliver(*, customer_id=None, message_id=None, dispatch: bool = True) -> list[uuid.UUID]:
    """Makes messages due now with a fresh retry window and queues them (support, the retry endpoint, the
    command). With `message_id`: that message, whatever its status (a delivered one is sent again, same
    bytes and messageId). Without: every failed or failing message (of `customer_id` when given).
    `dispatch=False` leaves the delivery to the caller (or the scheduler). Returns the ids rescheduled."""
    now = timezone.now()
    messages = WebhookMessage.objects.all()
    if message_id is not None:
        messages = messages.filter(id=message_id)
        if customer_id is not None:
            messages = messages.filter(customer_id=customer_id)
    else:
        messages = messages.filter(_redeliverable(customer_id))
    ids = list(messages.values_list("id", flat=True))
    if ids:
        WebhookMessage.objects.filter(id__in=ids).update(
            status=MessageStatus.PENDING,
            failures=0,
            next_attempt_at=now,
            give_up_at=now + schedule.retry_window(),
            delivered_at=None,
        )
        if dispatch:
            _send_on_commit(ids)
    return ids


def webhook_deliver_now(*, message_ids: list) -> dict[uuid.UUID, bool | None]:
    """Delivers the given messages in this process right away (the command's synchronous mode)."""
    now = timezone.now()
    claimed = [item for item in (_claim(message_id, now=now) for message_id in message_ids) if item is not None]
    outcomes = _deliver_claimed(claimed)
    results: dict[uuid.UUID, bool | None] = dict.fromkeys(message_ids)
    for item, outcome in zip(claimed, outcomes, strict=True):
        results[item.message_id] = outcome.succeeded
    return results


# --- Settings: URL, key, ping ---------------------------------------------------------------------------


class WebhookUrlRefused(Exception):
    """The URL was not accepted; the message is the customer-facing reason."""


def webhook_endpoint_get_or_create(*, customer: Customer) -> WebhookEndpoint:
    endpoint, _ = WebhookEndpoint.objects.get_or_create(
        customer=customer, defaults={"key": signing.webhook_key_generate()}
    )
    return endpoint


def webhook_ping(*, url: str, key: str) -> None:
    """Sends a signed `ping` to `url` and raises WebhookUrlRefused unless it answers 2xx `{"pong": <same>}`."""
    token = secrets.token_urlsafe(16)
    message_id = uuid.uuid4()
    body = webhook_body(message_id=message_id, message_type=PING_TYPE, when=timezone.now(), data={"ping": token})
    answer, outcome = _post(url=url, key=key, body=body, message_id=str(message_id), read_answer=True)
    if not outcome.succeeded:
        raise WebhookUrlRefused(f"The webhook URL did not accept the ping ({outcome.error}).")
    try:
        pong = json.loads(answer).get("pong") if len(answer) <= MAX_ANSWER_BYTES else None
    except (ValueError, AttributeError):
        pong = None
    if pong != token:
        raise WebhookUrlRefused('The webhook URL answered the ping without {"pong": "<the ping value>"}.')


def webhook_url_set(*, customer: Customer, url: str | None) -> WebhookEndpoint:
    """Sets (after a successful ping) or clears the customer's webhook URL. Generates the key if none, before
    the ping, so the ping is signed with the key the receiver will keep using."""
    endpoint = webhook_endpoint_get_or_create(customer=customer)
    url = (url or "").strip()
    if url:
        try:
            check_url(url)
        except UnsafeUrlError as exc:
            raise WebhookUrlRefused(f"The webhook URL is refused: {exc}.") from exc
        webhook_ping(url=url, key=endpoint.key)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=url, updated_at=timezone.now())
    endpoint.refresh_from_db()
    return endpoint
