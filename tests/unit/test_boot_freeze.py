"""A worker process freezes what it holds once booted (runtime.freeze_boot_objects, run by the WarmUp
middleware), and so do a web process (deploy/gunicorn.conf.py's post_worker_init) and the scheduler
(runtime.scheduler_boot): full collections stop walking the process's long-lived objects, and nothing
collectable at boot is kept for good."""

from __future__ import annotations

import gc
import runpy
import weakref
from pathlib import Path

import dramatiq
from django.conf import settings
from django.urls import get_resolver
from django.utils.module_loading import import_string
from dramatiq.brokers.stub import StubBroker

from metriport_bulk.runtime import WarmUp, scheduler_boot


class _Node:
    """A container in a reference cycle: only the collector frees it."""

    other: _Node | None = None


def _tracked(obj: object) -> bool:
    """Whether the collector still walks `obj` (frozen objects are in no generation it collects)."""
    return any(tracked is obj for tracked in gc.get_objects())


def test_a_booted_worker_keeps_its_objects_out_of_the_collectors_walks_and_frees_its_garbage_first():
    gc.unfreeze()  # what earlier tests' workers froze in this process comes back under the collector
    held = [object()]  # the process keeps it, as it keeps its modules and settings
    cycle = _Node()
    cycle.other = cycle
    garbage = weakref.ref(cycle)
    gc.collect()  # the cycle survives into the oldest generation, which only a full collection walks
    del cycle  # now unreachable garbage there, as what a process's imports leave behind
    assert _tracked(held) and garbage() is not None and gc.get_freeze_count() == 0

    worker = dramatiq.Worker(StubBroker(middleware=[WarmUp()]), worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        assert gc.get_freeze_count() > 0
        assert not _tracked(held)  # frozen: no collection walks it again
        assert garbage() is None  # collected before the freeze, not kept for good
        after_boot = [object()]
        assert _tracked(after_boot)  # what the worker makes from now on is collected as before
    finally:
        worker.stop()


def test_a_web_process_freezes_once_its_url_patterns_are_loaded():
    gc.unfreeze()
    config = runpy.run_path(str(Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"))
    config["post_worker_init"](None)  # gunicorn calls it in each web process once the app is loaded
    assert gc.get_freeze_count() > 0
    # The URL patterns (and the views they import) were loaded first, and frozen with the rest.
    assert not _tracked(get_resolver().url_patterns)


def test_the_scheduler_freezes_once_its_jobs_are_imported():
    gc.unfreeze()
    scheduler_boot()  # run_scheduler does it once, before its loop
    assert gc.get_freeze_count() > 0
    # Every job's function (and the module that holds it) was imported first, and frozen with the rest.
    jobs = [import_string(path) for path in settings.SCHEDULER_JOBS]
    assert jobs and not any(_tracked(job) for job in jobs)
