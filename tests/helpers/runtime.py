"""The in-process worker and scheduler of the `worker`, `scheduler` and `pipeline` fixtures, and the guard that
keeps a test from racing them: a step run inline in the test's thread while a live worker consumes the same
request's messages makes both run it (the flaky `assert 300 == 0` of a concurrent-imports test)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import dramatiq

_live_workers: list[dramatiq.Worker] = []


@contextlib.contextmanager
def live_worker(threads: int = 2) -> Iterator[dramatiq.Worker]:
    """A real Dramatiq worker (threads in this process) on the test broker, stopped on exit."""
    from metriport_bulk.runtime import start_embedded_worker

    worker = start_embedded_worker(threads=threads)
    _live_workers.append(worker)
    try:
        yield worker
    finally:
        _live_workers.remove(worker)
        worker.stop(timeout=10_000)


def assert_no_live_worker(what: str) -> None:
    """Inline steps are for tests without a worker; with one, drive the request through it (wait_final)."""
    assert not _live_workers, (
        f"{what} runs steps inline while a live worker consumes the same messages: the two race. Either do "
        "not request the worker (worker/pipeline fixture) or let it do the work and wait for the outcome."
    )


_rounds = 0
_round_done = threading.Condition()
ROUND_JOB = "tests.helpers.runtime.count_scheduler_round"


def count_scheduler_round() -> None:
    """Appended last to SCHEDULER_JOBS by the `scheduler` fixture: each call ends one round of every job."""
    global _rounds
    with _round_done:
        _rounds += 1
        _round_done.notify_all()


def wait_scheduler_rounds(count: int = 2, timeout: float = 30.0) -> None:
    """Waits until the scheduler ran every job at least `count` times after this call (the round in progress,
    whose first jobs may have run before it, does not count)."""
    with _round_done:
        target = _rounds + count + 1
        if not _round_done.wait_for(lambda: _rounds >= target, timeout=timeout):
            raise AssertionError(f"the scheduler did not run {count} rounds within {timeout}s")


class _EnqueueRecorder(dramatiq.Middleware):
    def __init__(self) -> None:
        self.sent: list[str] = []

    def after_enqueue(self, broker, message, delay) -> None:
        self.sent.append(message.actor_name)


@contextlib.contextmanager
def recording_enqueues(broker: dramatiq.Broker) -> Iterator[list[str]]:
    """The actor names of the messages enqueued on `broker` while inside (what a check that nothing is sent
    too early observes, instead of sleeping and watching for the consequence)."""
    recorder = _EnqueueRecorder()
    broker.add_middleware(recorder)
    try:
        yield recorder.sent
    finally:
        broker.middleware.remove(recorder)
