"""Process-level runtime: the in-process Dramatiq worker of the embedded default and the scheduler loop.

The scheduler runs the periodic jobs of SCHEDULER_JOBS (upload polling, expiry, resuming stale work,
webhook delivery of due messages). Every job is idempotent and claims work with conditional UPDATEs, so
running two schedulers is harmless; production runs one `manage.py run_scheduler` per deployment.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import threading
import time

import dramatiq
from django.conf import settings
from django.db import close_old_connections, connections
from django.utils.module_loading import import_string

from metriport_bulk.lib import storage

logger = logging.getLogger(__name__)


# Webhook delivery has threads of its own (a slow endpoint never holds an import's); see webhooks.tasks.
WEBHOOKS_QUEUES = {"webhooks", "webhooks-status"}
WEBHOOK_WORKER_THREADS = 4


class EmbeddedWorker(dramatiq.Worker):
    """The in-process worker: its threads consume every queue but `webhooks`, which a second worker with
    threads of its own consumes, so webhook deliveries (slow receivers included) never occupy the threads
    of imports. `stop()` stops both, side by side: each waits for its threads' messages and for its
    consumers' polls to end."""

    webhook_worker: dramatiq.Worker | None = None

    def stop(self, timeout: int = 600_000) -> None:
        webhooks = None
        if self.webhook_worker is not None:
            webhooks = threading.Thread(
                target=self.webhook_worker.stop, kwargs={"timeout": timeout}, name="stop-webhook-worker"
            )
            webhooks.start()
        super().stop(timeout=timeout)
        if webhooks is not None:
            webhooks.join()
        _drop_worker_middleware(self)


class WarmUp(dramatiq.Middleware):
    """A worker process, as it boots, builds its S3 client (storage.warm_up), not in its first request's parse,
    then freezes what it holds (freeze_boot_objects). Dramatiq logs a failure here and boots on: the first file
    then fails as it would have."""

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        storage.warm_up()
        freeze_boot_objects()


def freeze_boot_objects() -> None:
    """Moves every object the process holds once booted (its modules, Django's settings and URL patterns,
    botocore's service model) out of the garbage collector's reach: they live as long as the process, and each
    full collection walked them all again, 80-130 ms each, 1.2-1.6 s of each worker's time in a 100,000-row
    import (docs/benchmarks.md, nineteenth session). What is garbage already is collected first, so nothing
    collectable is kept for good; objects made later are collected as before."""
    gc.collect()
    gc.freeze()


def _drop_worker_middleware(worker: dramatiq.Worker) -> None:
    """Removes the middleware `Worker.start()` adds to the broker (it starts consumers for queues declared
    later) and `Worker.stop()` leaves there: a stopped worker's would still add consumers, and the next worker
    started on the broker (a test's, a second one here) logs that it adds "a middleware of the same type twice".
    A new list, not one changed in place: threads running a message iterate the current one."""
    worker.broker.middleware = [m for m in worker.broker.middleware if getattr(m, "worker", None) is not worker]


def start_embedded_worker(threads: int | None = None) -> dramatiq.Worker:
    """Starts the Dramatiq workers of this process on its broker (the StubBroker of the embedded default;
    the tests' Redis broker): one for every queue but the webhooks ones, one for those."""
    # Actors register on import; the worker only consumes queues of registered actors.
    for module in ("bulkimport.tasks", "webhooks.tasks", "docqueries.tasks"):
        with contextlib.suppress(ModuleNotFoundError):
            importlib.import_module(module)
    broker = dramatiq.get_broker()
    others = {queue for queue in broker.get_declared_queues() if queue not in WEBHOOKS_QUEUES}
    worker = EmbeddedWorker(
        broker,
        queues=others,
        worker_threads=threads or settings.EMBEDDED_WORKER_THREADS,
        worker_timeout=settings.DRAMATIQ_WORKER_TIMEOUT,
    )
    webhook_queues = WEBHOOKS_QUEUES & set(broker.get_declared_queues())
    if webhook_queues:
        worker.webhook_worker = dramatiq.Worker(
            broker,
            queues=webhook_queues,
            worker_threads=WEBHOOK_WORKER_THREADS,
            worker_timeout=settings.DRAMATIQ_WORKER_TIMEOUT,
        )
        worker.webhook_worker.start()
        # Its consumers exist now (its queue was declared above): it needs no middleware for later queues.
        _drop_worker_middleware(worker.webhook_worker)
    worker.start()
    return worker


def run_scheduled_jobs_once() -> None:
    for path in settings.SCHEDULER_JOBS:
        try:
            import_string(path)()
        except Exception:  # noqa: BLE001 - one failing job must not stop the others; ids only in logs
            logger.exception("scheduled job %s failed", path)
        finally:
            close_old_connections()


class SchedulerThread(threading.Thread):
    def __init__(self, interval: float | None = None) -> None:
        super().__init__(name="metriport-bulk-scheduler", daemon=True)
        self.interval = interval if interval is not None else settings.SCHEDULER_INTERVAL_SECONDS
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                run_scheduled_jobs_once()
                self.stopped.wait(self.interval)
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=30)


def scheduler_boot() -> None:
    """What `run_scheduler` does once before its loop, as a worker does at boot (WarmUp): imports every job,
    builds the S3 client its upload polling uses, then freezes what the process holds (freeze_boot_objects),
    so its full collections walk only what its jobs make."""
    for path in settings.SCHEDULER_JOBS:
        import_string(path)
    storage.warm_up()
    freeze_boot_objects()


def run_scheduler_forever(interval: float | None = None) -> None:
    interval = interval if interval is not None else settings.SCHEDULER_INTERVAL_SECONDS
    scheduler_boot()
    while True:
        started = time.monotonic()
        run_scheduled_jobs_once()
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
