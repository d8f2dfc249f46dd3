"""Sending actor messages after a commit, whatever the broker's state.

The committed state change is the truth: once a request is committed, the API has succeeded, and a broker that
does not answer the send after the commit must not turn that success into a 500 (the client would retry a call
that was accepted and get a 409). A failed send is logged and dropped; the scheduler's sweepers re-send every
step whose message went missing (bulkimport.services.sweep, the webhook outbox's webhook_deliver_due, the
Document Query sweep) once the broker is back, and /readyz reports the broker down meanwhile."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction

logger = logging.getLogger(__name__)


def send_or_log(send: Callable[[], None], *, what: str) -> bool:
    """Runs `send`; False (and a warning naming the exception class only: a broker URL can hold a password)
    when the broker refused it."""
    try:
        send()
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweeper re-sends
        logger.warning("broker unreachable: %s not sent (%s); the sweeper re-sends it", what, type(exc).__name__)
        return False
    return True


def send_on_commit(send: Callable[[], None], *, what: str) -> None:
    """Runs `send` when the caller's transaction commits (at once outside one); a broker failure is logged."""
    transaction.on_commit(lambda: send_or_log(send, what=what))
