"""A per-key token bucket in the database, shared by every web and worker process.

Why the database and not dramatiq's Redis rate limiter: the limit must hold in every supported deployment
(the embedded default has no Redis, production may use RabbitMQ), across any number of worker machines
and across restarts; the database is the one store all of them share. Each acquisition is one short
transaction on one row (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite serializes writers anyway), which is
cheap at gateway-call rates (hundreds per minute per customer).

The bucket holds one second's worth of calls (at least one), so any 60-second window sees at most
`per_minute` calls plus that small burst, paced evenly rather than front-loaded.
"""

from __future__ import annotations

import math
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from docqueries.models import RateLimitBucket


def bucket_capacity(per_minute: int) -> float:
    return float(max(1, math.ceil(per_minute / 60)))


def rate_limit_acquire(*, key: str, per_minute: int, now: datetime | None = None) -> float:
    """Takes one token from `key`'s bucket. Returns 0.0 when taken, else the seconds until one is available
    (nothing is taken then). `per_minute` <= 0 disables the limit."""
    if per_minute <= 0:
        return 0.0
    now = now or timezone.now()
    capacity = bucket_capacity(per_minute)
    rate = per_minute / 60.0  # tokens per second
    with transaction.atomic():
        RateLimitBucket.objects.get_or_create(key=key, defaults={"tokens": capacity, "updated_at": now})
        bucket = RateLimitBucket.objects.select_for_update().get(key=key)
        elapsed = max(0.0, (now - bucket.updated_at).total_seconds())
        tokens = min(capacity, bucket.tokens + elapsed * rate)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = 0.0
        else:
            wait = (1.0 - tokens) / rate
        RateLimitBucket.objects.filter(key=key).update(tokens=tokens, updated_at=max(now, bucket.updated_at))
    return wait
