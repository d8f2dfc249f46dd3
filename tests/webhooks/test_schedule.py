"""The retry schedule: grows exponentially, is jittered, is capped, and spans the whole retry window."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from webhooks import schedule


def test_nominal_delays_double_then_cap_at_one_hour():
    delays = [schedule.nominal_delay(n) for n in range(1, 40)]
    assert delays[:4] == [10, 20, 40, 80]
    assert all(later >= earlier for earlier, later in zip(delays, delays[1:], strict=False))
    assert max(delays) == 3600
    assert schedule.nominal_delay(10_000) == 3600


def test_jitter_stays_within_twenty_percent_and_varies():
    rng = random.Random(7)
    samples = [schedule.retry_delay(3, rng=rng).total_seconds() for _ in range(200)]
    assert all(32 <= sample <= 48 for sample in samples)
    assert len({round(sample, 3) for sample in samples}) > 50


def _simulate(window: timedelta, rng: random.Random) -> list[datetime]:
    """Attempt times of a message that always fails, created at t0."""
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    give_up_at = t0 + window
    attempts, now, failures = [t0], t0, 0
    while True:
        failures += 1
        retry = schedule.next_attempt_at(failures=failures, now=now, give_up_at=give_up_at, rng=rng)
        if retry is None:
            return attempts
        assert retry > now
        attempts.append(retry)
        now = retry


def test_schedule_spans_at_least_24_hours_with_a_bounded_number_of_attempts(settings):
    settings.WEBHOOK_RETRY_HOURS = 25
    attempts = _simulate(schedule.retry_window(), random.Random(1))
    span = attempts[-1] - attempts[0]
    assert span >= timedelta(hours=24)
    assert span == timedelta(hours=25)  # the last retry is pinned to the end of the window
    assert 20 <= len(attempts) <= 40
    gaps = [(b - a).total_seconds() for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] < 15 and gaps[5] > 200  # grows from seconds to minutes
    assert max(gaps) <= 3600 * 1.2


def test_no_retry_once_the_window_is_over():
    now = datetime(2025, 1, 2, tzinfo=UTC)
    assert schedule.next_attempt_at(failures=3, now=now, give_up_at=now) is None
    assert schedule.next_attempt_at(failures=3, now=now, give_up_at=now - timedelta(seconds=1)) is None
