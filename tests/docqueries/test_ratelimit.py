"""The database token bucket behind the per-customer gateway rate limit."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from docqueries.ratelimit import bucket_capacity, rate_limit_acquire


def test_bucket_holds_one_seconds_worth_and_refills_at_the_rate(db):
    now = timezone.now()
    assert bucket_capacity(600) == 10 and bucket_capacity(2) == 1
    taken = [rate_limit_acquire(key="k", per_minute=600, now=now) for _ in range(10)]
    assert taken == [0.0] * 10
    wait = rate_limit_acquire(key="k", per_minute=600, now=now)
    assert abs(wait - 0.1) < 1e-6  # 10 tokens a second
    assert rate_limit_acquire(key="k", per_minute=600, now=now + timedelta(seconds=0.1)) == 0.0


def test_slow_rates_wait_whole_intervals(db):
    now = timezone.now()
    assert rate_limit_acquire(key="slow", per_minute=2, now=now) == 0.0
    assert abs(rate_limit_acquire(key="slow", per_minute=2, now=now) - 30) < 1e-6
    assert abs(rate_limit_acquire(key="slow", per_minute=2, now=now + timedelta(seconds=20)) - 10) < 1e-6
    assert rate_limit_acquire(key="slow", per_minute=2, now=now + timedelta(seconds=30)) == 0.0


def test_no_more_than_the_rate_plus_the_burst_in_any_minute(db):
    start = timezone.now()
    granted = 0
    for step in range(600):  # one attempt every 0.1 s for a minute
        if rate_limit_acquire(key="minute", per_minute=120, now=start + timedelta(seconds=step / 10)) == 0.0:
            granted += 1
    assert 120 <= granted <= 122


def test_keys_are_independent_and_zero_disables(db):
    now = timezone.now()
    assert rate_limit_acquire(key="a", per_minute=1, now=now) == 0.0
    assert rate_limit_acquire(key="a", per_minute=1, now=now) > 0
    assert rate_limit_acquire(key="b", per_minute=1, now=now) == 0.0
    assert all(rate_limit_acquire(key="c", per_minute=0, now=now) == 0.0 for _ in range(5))
