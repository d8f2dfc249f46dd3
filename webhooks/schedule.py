"""Retry schedule of webhook deliveries: exponential backoff with jitter, capped, over a retry window of
settings.WEBHOOK_RETRY_HOURS (at least 24 h) from the message's creation or manual redelivery.

Nominal delays after the n-th consecutive failure: 10 s, 20 s, 40 s ... doubling up to one hour, then hourly;
each is jittered by +/-20 % so messages failing together do not retry in lockstep. The last retry is pinned
to the end of the window, so the schedule always spans the whole window; a failure at or after it is final.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings

BASE_SECONDS = 10.0
FACTOR = 2.0
CAP_SECONDS = 3600.0
JITTER = 0.2


def retry_window() -> timedelta:
    return timedelta(hours=settings.WEBHOOK_RETRY_HOURS)


def nominal_delay(failures: int) -> float:
    """Seconds to wait after the `failures`-th consecutive failure (1-based), before jitter."""
    exponent = max(failures, 1) - 1
    if exponent > 32:  # avoids float overflow; the cap is reached long before
        return CAP_SECONDS
    return min(BASE_SECONDS * FACTOR**exponent, CAP_SECONDS)


def retry_delay(failures: int, *, rng: random.Random | None = None) -> timedelta:
    nominal = nominal_delay(failures)
    factor = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return timedelta(seconds=nominal * factor)


def next_attempt_at(
    *, failures: int, now: datetime, give_up_at: datetime, rng: random.Random | None = None
) -> datetime | None:
    """When to try again after the `failures`-th failure at `now`, or None when the window is over."""
    if now >= give_up_at:
        return None
    return min(now + retry_delay(failures, rng=rng), give_up_at)
