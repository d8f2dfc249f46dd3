"""Dramatiq's Redis broker, whose idle consumers look for messages less often where a second's wait costs
nothing.

On Redis every consumer (one per queue a worker process consumes, and one per delay queue) that finds its
queue empty polls again with a growing pause of at most the worker timeout. At DRAMATIQ_WORKER_TIMEOUT's
100 ms, the dozen consumers of a worker consuming every queue took 12% of a core on a slower machine, idle or
busy with another queue, so taken from the import it runs (docs/benchmarks.md, bench/idle_workers.py). Only the
steps of an import need the short pause (a parse, its segments, a chunk, a finish, a first chunk's or a
single patient's Document Queries on the express lane: each would wait for it). Delayed messages (retries,
the Document Queries' polls) are fetched ahead of their time and held until due, so a longer pause delays
none whose delay is longer than it; the ordinary lane of Document Queries is a big import's backlog, busy
while it lasts; webhooks are waited on by no step. Those consumers (DRAMATIQ_BACKGROUND_QUEUES and every
delay queue) pause up to DRAMATIQ_BACKGROUND_TIMEOUT instead. RabbitMQ pushes messages and the embedded
default's in-process broker blocks: neither polls."""

from __future__ import annotations

from django.conf import settings
from dramatiq.broker import Consumer
from dramatiq.brokers.redis import RedisBroker as DramatiqRedisBroker
from dramatiq.common import q_name


def poll_timeout(queue_name: str, timeout: int) -> int:
    """The longest pause (ms) of an idle consumer of `queue_name`, given the worker's `timeout`."""
    if queue_name.endswith(".DQ") or q_name(queue_name) in settings.DRAMATIQ_BACKGROUND_QUEUES:
        return max(timeout, settings.DRAMATIQ_BACKGROUND_TIMEOUT)
    return timeout


class RedisBroker(DramatiqRedisBroker):
    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        return super().consume(queue_name, prefetch, poll_timeout(queue_name, timeout))
