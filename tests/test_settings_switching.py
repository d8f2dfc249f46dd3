"""Settings switch between the embedded default and real services from environment variables alone."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import json; from django.conf import settings; import django; django.setup(); import dramatiq; "
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], 'storage': settings.STORAGES['default']['BACKEND'],"
    " 'broker': type(dramatiq.get_broker()).__module__ + '.' + type(dramatiq.get_broker()).__name__, 'embedded': settings.EMBEDDED_WORKER,"
    " 'polls': [settings.DRAMATIQ_WORKER_TIMEOUT, settings.DRAMATIQ_BACKGROUND_TIMEOUT]}))"
)


def _inherited() -> dict[str, str]:
    """This process's environment without what configures the services, the tests' or the workers' own."""
    prefixes = ("DATABASE_URL", "BROKER_URL", "S3_", "TEST_", "DRAMATIQ_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def _settings_with(env: dict) -> dict:
    clean = _inherited()
    clean.update(env, DJANGO_SETTINGS_MODULE="metriport_bulk.settings")
    out = subprocess.run([sys.executable, "-c", PROBE], env=clean, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_embedded_default_needs_no_services(tmp_path):
    got = _settings_with({"DATA_DIR": str(tmp_path)})
    assert got == {
        "engine": "metriport_bulk.sqlite",  # Django's SQLite backend, its writers served in turn
        "storage": "django.core.files.storage.FileSystemStorage",
        "broker": "dramatiq.brokers.stub.StubBroker",
        "embedded": True,
        "polls": [100, 1000],
    }


def test_real_services_from_environment():
    got = _settings_with(
        {
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
            "BROKER_URL": "redis://127.0.0.1:6379/0",
            "S3_BUCKET": "b",
            "S3_ENDPOINT_URL": "http://127.0.0.1:1",
        }
    )
    assert got == {
        "engine": "django.db.backends.postgresql",
        "storage": "storages.backends.s3.S3Storage",
        "broker": "metriport_bulk.lib.broker.RedisBroker",  # Dramatiq's, polling less where it may
        "embedded": False,
        "polls": [100, 1000],  # an import's steps' queues, then the others (delay queues, docqueries, webhooks)
    }


def test_rabbitmq_broker_from_environment():
    assert (
        _settings_with({"BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/"})["broker"]
        == "dramatiq.brokers.rabbitmq.RabbitmqBroker"
    )


def test_the_suite_itself_runs_on_real_services(settings):
    import dramatiq
    from django.db import connection

    from metriport_bulk.lib.broker import RedisBroker

    assert connection.vendor == "postgresql"
    assert isinstance(dramatiq.get_broker(), RedisBroker)
    assert settings.S3_BUCKET and settings.S3_ENDPOINT_URL


KEY_PROBE = "from django.conf import settings; print(settings.SECRET_KEY)"


def _secret_key(env: dict) -> str:
    clean = _inherited()
    clean.pop("SECRET_KEY", None)
    clean.update(env, DJANGO_SETTINGS_MODULE="metriport_bulk.settings")
    out = subprocess.run(
        [sys.executable, "-c", KEY_PROBE], env=clean, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


def test_embedded_secret_key_is_random_per_install_and_kept(tmp_path):
    first = _secret_key({"DATA_DIR": str(tmp_path / "a")})
    assert len(first) >= 50 and first == _secret_key({"DATA_DIR": str(tmp_path / "a")})
    assert (tmp_path / "a" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert _secret_key({"DATA_DIR": str(tmp_path / "b")}) != first
    assert _secret_key({"DATA_DIR": str(tmp_path / "c"), "SECRET_KEY": "from-env"}) == "from-env"
    assert not (tmp_path / "c" / "secret_key").exists()


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode().split("\0") if "=" in entry)


def _descendants(pid: int) -> list[int]:
    found = []
    try:
        children = [
            child for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
        ]
    except OSError:  # the process or one of its threads ended meanwhile
        return found
    for child in children:
        found += [int(child), *_descendants(int(child))]
    return found


def test_rundramatiq_workers_get_the_worker_timeout(tmp_path):
    """DRAMATIQ_WORKER_TIMEOUT reaches every worker process `rundramatiq` starts as Dramatiq's own variable,
    which Dramatiq reads when a process starts: over the value the command itself inherited."""
    from tests.helpers.processes import start_worker
    from tests.helpers.waiting import wait_until

    assert os.environ["dramatiq_worker_timeout"] == "100"  # noqa: SIM112 - this process's settings: the default
    worker = start_worker(tmp_path, DRAMATIQ_WORKER_TIMEOUT="250")  # given this process's environment
    try:
        wait_until(lambda: len(_descendants(worker.popen.pid)) >= 1, message="rundramatiq's worker processes")
        processes = [worker.popen.pid, *_descendants(worker.popen.pid)]
        assert [_environment(pid).get("dramatiq_worker_timeout") for pid in processes] == ["250"] * len(processes)
    finally:
        worker.kill()
