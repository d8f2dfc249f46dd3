"""Real worker and scheduler processes for reliability tests (so they can be SIGKILLed), sharing the test
database, S3 server and broker of the test process unless told otherwise."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def service_env(**overrides: str) -> dict[str, str]:
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEST_DATABASE_NAME", "PYTEST"))}
    env.update(
        DJANGO_SETTINGS_MODULE="metriport_bulk.settings",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        BROKER_URL=settings.BROKER_URL,
        DRAMATIQ_NAMESPACE=settings.DRAMATIQ_NAMESPACE,
        DB_CONN_MAX_AGE="0",
        LOG_LEVEL="WARNING",
        # Document Queries whose messages died with a killed worker are resumed within seconds, not 30 s.
        DOCQUERY_SWEEP_GRACE_SECONDS="1",
    )
    env.update(overrides)
    return env


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = open(log, "ab")  # noqa: SIM115 - closed in kill()
        self.popen = subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)
        self.handle.close()


def start_worker(tmp_path: Path, name: str = "worker", **env: str) -> Process:
    return Process(["rundramatiq", "--processes", "1", "--threads", "2"], service_env(**env), tmp_path / f"{name}.log")


def start_scheduler(tmp_path: Path, **env: str) -> Process:
    return Process(["run_scheduler", "--interval", "0.5"], service_env(**env), tmp_path / "scheduler.log")


class RedisServer:
    """A private, throw-away redis-server (no persistence) that a test may kill and restart."""

    def __init__(self, tmp_path: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise RuntimeError("redis-server is required for the broker restart test")
        self.binary = binary
        self.dir = tmp_path
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.popen = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        import redis

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=1).ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
