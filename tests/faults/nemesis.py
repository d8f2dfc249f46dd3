"""The nemesis: faults at random moments, drawn from one recorded seed. One fault at a time, each healed before
the next (so every one is attributable), with a random pause in between.

Kinds (each heals itself):
- pg-kill      PostgreSQL SIGKILLed (postmaster and backends) and restarted: crash recovery; the pipeline's
               chunk transactions commit with synchronous_commit off, so their last commits may be lost
- broker-kill  redis-server SIGKILLed and restarted empty: every queued message is lost
- s3-down      the S3 host unplugged from the switch for 10 s
- partition    one worker host cut from the database host (both directions), then healed
- latency      200 ms +/- 50 ms on every segment between the workers and the database
- freeze       one worker host SIGSTOPped past its lease (BULK_STALE_SECONDS), then SIGCONTed
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from tests.faults.cluster import WORKERS, Cluster

KINDS = ("pg-kill", "broker-kill", "s3-down", "partition", "latency", "freeze")


@dataclass
class Fault:
    kind: str
    target: str
    started: float
    ended: float = 0.0


@dataclass
class Nemesis:
    cluster: Cluster
    rng: random.Random
    stale_seconds: float
    kinds: tuple[str, ...] = KINDS
    gap: tuple[float, float] = (0.5, 3.0)
    max_faults: int = 1_000_000
    plan: list[str] | None = None  # an exact sequence of kinds (the short campaign), else drawn from `kinds`
    injected: list[Fault] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def start(self) -> Nemesis:
        self.thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self.thread.start()
        return self

    def finish(self, timeout: float = 120) -> None:
        """Stops after the fault in progress has healed."""
        self.stop.set()
        if self.thread:
            self.thread.join(timeout)
            if self.thread.is_alive():
                raise RuntimeError("nemesis did not stop")
        if self.error:
            raise RuntimeError("nemesis failed") from self.error

    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()

    def _run(self) -> None:
        try:
            count = 0
            while not self.stop.is_set() and count < self.max_faults:
                if self.plan is not None and count >= len(self.plan):
                    break
                if self.stop.wait(self.rng.uniform(*self.gap)):
                    break
                kind = self.plan[count] if self.plan is not None else self.rng.choice(self.kinds)
                self.inject(kind)
                count += 1
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    def inject(self, kind: str) -> None:
        c, rng = self.cluster, self.rng
        target = (
            rng.choice(WORKERS)
            if kind in ("partition", "freeze")
            else {"pg-kill": "db", "broker-kill": "broker", "s3-down": "s3", "latency": "db"}[kind]
        )
        fault = Fault(kind, target, time.time())
        self.injected.append(fault)
        if kind == "pg-kill":
            c.kill_postgres()
            time.sleep(rng.uniform(0.2, 2.0))
            c.start_postgres()
        elif kind == "broker-kill":
            c.kill_redis()
            time.sleep(rng.uniform(0.2, 2.0))
            c.start_redis()
        elif kind == "s3-down":
            c.net.unplug("s3")
            try:
                time.sleep(10)
            finally:
                c.net.plug("s3")
        elif kind == "partition":
            c.net.partition(target, "db")
            try:
                time.sleep(rng.uniform(3.0, 8.0))
            finally:
                c.net.heal(target, "db")
        elif kind == "latency":
            c.latency(True)
            try:
                time.sleep(rng.uniform(4.0, 10.0))
            finally:
                c.latency(False)
        elif kind == "freeze":
            c.freeze(target)
            try:
                time.sleep(self.stale_seconds * 2 + rng.uniform(0.5, 2.0))  # past the lease
            finally:
                c.thaw(target)
        else:
            raise ValueError(kind)
        fault.ended = time.time()
