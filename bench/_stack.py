"""The real stack for benchmarks: a fresh PostgreSQL database, a Redis namespace and a SeaweedFS S3 server,
exported as environment variables before Django loads. Cleaned up at exit."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def start_stack(tag: str = "bench") -> dict[str, str]:
    import psycopg

    from devtools.seaweed import start_seaweed

    db_name = f"mb_{tag}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')

    def drop_db() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')

    atexit.register(drop_db)
    seaweed = start_seaweed()
    atexit.register(seaweed.stop)
    env = {
        "DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgres://", 1) + f"/{db_name}",
        "BROKER_URL": REDIS_URL,
        "DRAMATIQ_NAMESPACE": f"mb-{tag}-{uuid.uuid4().hex[:6]}",
        "DJANGO_SETTINGS_MODULE": "metriport_bulk.settings",
        "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
        "LOG_LEVEL": "WARNING",
        **seaweed.env,
    }
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    return env


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the peak resident set size of a live process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first: the parent is [1], utime [11],
    stime [12]), or None when the process has ended."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = proc_stat(stat.parent.name)
        if fields is not None and int(fields[1]) == pid:
            child = int(stat.parent.name)
            found.append(child)
            found.extend(children_of(child))
    return found


def start_workers(processes: int, threads: int, env: dict[str, str], queues: list[str] | None = None):
    """`manage.py rundramatiq` in its own process group (stop it with os.killpg(pid, SIGKILL)); all queues
    unless `queues` names some."""
    import subprocess

    command = [sys.executable, "manage.py", "rundramatiq", "--processes", str(processes), "--threads", str(threads)]
    if queues:
        command += ["--queues", *queues]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for_workers(root_pid: int, processes: int, timeout: float = 60.0) -> None:
    """rundramatiq execs dramatiq, whose process forks `processes` workers that import Django, load the actors
    and connect to the broker: wait until they exist and their start-up work is done (each uses less than
    three tenths of a core over a second, against a whole core while it starts). An idle worker's polling
    (metriport_bulk.lib.broker) uses 3-13% of a core, depending on the machine and the timeouts: a
    fixed fifth of a core for all of them together was not always reached on a slower machine."""
    deadline = time.monotonic() + timeout
    busy: float | None = None
    while time.monotonic() < deadline:
        workers = [pid for pid in children_of(root_pid) if not children_of(pid)]
        if len(workers) >= processes:
            used = cpu_seconds(workers)
            if busy is not None and used - busy < 0.3 * len(workers):
                return
            busy = used
        time.sleep(1.0)
    raise RuntimeError(f"{processes} worker processes were not up and settled after {timeout:.0f} s")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the live processes among `pids`."""
    total = 0
    for pid in pids:
        fields = proc_stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_workers(
    processes: int, threads: int, env: dict[str, str], queues: list[str] | None = None
) -> Iterator[int]:
    """Worker processes (start_workers), once up, and the scheduler thread beside them (it notices S3 uploads
    every 0.5 s and sweeps); on exit the scheduler stops and the workers are SIGKILLed. Yields the workers'
    root pid."""
    from metriport_bulk.runtime import SchedulerThread

    workers = start_workers(processes, threads, env, queues)
    scheduler = SchedulerThread(interval=0.5)
    try:
        wait_for_workers(workers.pid, processes)
        scheduler.start()
        yield workers.pid
    finally:
        if scheduler.is_alive():
            scheduler.stop()
        os.killpg(workers.pid, signal.SIGKILL)
        workers.wait()


def gc_recording(env: dict[str, str], directory: str | Path) -> dict[str, str]:
    """`env` for processes whose garbage collections bench/gcstats/sitecustomize.py records into `directory`
    (its folder first on PYTHONPATH, before the one `env` or this process has; read them back with
    gc_recorded)."""
    inherited = env.get("PYTHONPATH", os.environ.get("PYTHONPATH"))
    path = os.pathsep.join(filter(None, (str(ROOT / "bench" / "gcstats"), inherited)))
    return {**env, "BENCH_GC_DIR": str(directory), "PYTHONPATH": path}


def gc_recorded(directory: str | Path) -> dict[int, list[tuple[int, float]]]:
    """Process id -> (generation, milliseconds) of each garbage collection it ran, in order."""
    found: dict[int, list[tuple[int, float]]] = {}
    for recorded in sorted(Path(directory).iterdir()):
        lines = (line.split() for line in recorded.read_text().splitlines())
        found[int(recorded.name)] = [(int(generation), float(ms)) for generation, ms in lines]
    return found
