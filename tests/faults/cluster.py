"""The deployment under test, one process group per role, each on a host (network namespace) of its own:

    db      PostgreSQL 15 (initdb into the run's directory), and the link relay the workers reach it through
    broker  redis-server (no persistence: a killed broker loses every queued message)
    s3      SeaweedFS (devtools.seaweed) behind a relay on the host's address
    web     gunicorn with deploy/gunicorn.conf.py
    w1, w2  `manage.py rundramatiq`
    sched   `manage.py run_scheduler`
    hook    the customers' webhook receiver (tests.faults.hook)
    client  the campaign itself (driver, nemesis, checker) after `enter()`

Never the machine's shared PostgreSQL, Redis or RabbitMQ: every address is on the private switch.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.net import SUBNET, Network

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))
HOSTS = {"db": 2, "broker": 3, "s3": 4, "web": 10, "w1": 11, "w2": 12, "sched": 13, "hook": 20, "client": 30}
WORKERS = ("w1", "w2")
PG_PORT, PG_RELAY_PORT, REDIS_PORT, S3_PORT, WEB_PORT, HOOK_PORT = 5432, 6432, 6379, 8333, 8000, 9000


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the whole process group, and wait until none of it remains (a PostgreSQL restarted while
        an old backend still holds the shared memory refuses to start)."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=20)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.05)


@dataclass
class Cluster:
    tag: str
    app_env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mb-faults-")))
    net: Network = field(init=False)
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.net = Network(self.tag)

    def addr(self, host: str) -> str:
        return self.net.hosts[host].address

    # --- processes ----------------------------------------------------------------------------------------

    def spawn(self, name: str, host: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        log = self.workdir / f"{name}.log"
        handle = open(log, "ab")  # noqa: SIM115 - the child holds its own copy
        try:
            popen = subprocess.Popen(
                [*self.net.hosts[host].exec_prefix(), *args],
                cwd=ROOT,
                env=env if env is not None else self.base_env(),
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            handle.close()
        self.procs[name] = Proc(name, popen, log)
        return self.procs[name]

    def base_env(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
        env = {k: v for k, v in os.environ.items() if k in keep}
        env["TMPDIR"] = str(self.workdir)
        return env

    def manage(self, name: str, host: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        return self.spawn(
            name, host, [sys.executable, "manage.py", *args], {**self.base_env(), **(env or self.app_env)}
        )

    def run_manage(self, host: str, *args: str, timeout: float = 300) -> None:
        proc = self.manage(f"manage-{args[0]}", host, *args)
        code = proc.popen.wait(timeout=timeout)
        if code != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {proc.log.read_text()[-3000:]}")

    # --- the services -------------------------------------------------------------------------------------

    def start_services(self, app_overrides: dict[str, str]) -> None:
        """The data services and the webhook receiver; the network must exist and this thread be on a host."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)  # PostgreSQL runs as the postgres user under it
        self.init_postgres()
        self.start_postgres()
        self.start_redis()
        self.start_s3()
        self.spawn("pg-relay", "db", self.relay_args(f"{self.addr('db')}:{PG_RELAY_PORT}", f"127.0.0.1:{PG_PORT}"))
        self.spawn(
            "hook",
            "hook",
            [
                sys.executable,
                "-m",
                "tests.faults.hook",
                self.addr("hook"),
                str(HOOK_PORT),
                str(self.workdir / "webhooks.jsonl"),
            ],
        )
        self.app_env = self.make_app_env(app_overrides)

    def start_app(self) -> None:
        """Migrations, then the web host, two workers and the scheduler."""
        self.run_manage("web", "migrate", "--noinput")
        web_env = {
            **self.app_env,
            "GUNICORN_BIND": f"{self.addr('web')}:{WEB_PORT}",
            "WEB_CONCURRENCY": "2",
            "GUNICORN_THREADS": "4",
            "GUNICORN_TIMEOUT": "30",
        }
        self.spawn(
            "web",
            "web",
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "metriport_bulk.wsgi"],
            {**self.base_env(), **web_env},
        )
        worker_env = {**self.app_env, "DATABASE_URL": self.database_url(relay=True)}
        for host in WORKERS:
            self.manage(host, host, "rundramatiq", "--processes", "1", "--threads", "4", env=worker_env)
        self.manage("sched", "sched", "run_scheduler", env=self.app_env)
        wait_tcp(self.addr("web"), WEB_PORT, timeout=90, proc=self.procs["web"])

    def relay_args(self, listen: str, target: str) -> list[str]:
        return [sys.executable, "-m", "tests.faults.linkproxy", listen, target]

    def database_url(self, relay: bool = False) -> str:
        port = PG_RELAY_PORT if relay else PG_PORT
        return f"postgres://postgres@{self.addr('db')}:{port}/metriport"

    def make_app_env(self, overrides: dict[str, str]) -> dict[str, str]:
        env = {
            "DJANGO_SETTINGS_MODULE": "metriport_bulk.settings",
            "SECRET_KEY": f"fault-campaign-{self.tag}",
            "DATA_DIR": str(self.workdir / "data"),
            "DATABASE_URL": self.database_url(),
            "BROKER_URL": f"redis://{self.addr('broker')}:{REDIS_PORT}/0",
            "DRAMATIQ_NAMESPACE": "metriport-bulk",
            "PUBLIC_BASE_URL": f"http://{self.addr('web')}:{WEB_PORT}",
            "S3_BUCKET": "metriport-bulk",
            "S3_ENDPOINT_URL": f"http://{self.addr('s3')}:{S3_PORT}",
            "S3_PUBLIC_ENDPOINT_URL": f"http://{self.addr('s3')}:{S3_PORT}",
            "S3_ACCESS_KEY_ID": "metriport-bulk-dev",
            "S3_SECRET_ACCESS_KEY": "metriport-bulk-dev-secret",
            "S3_REGION": "us-east-1",
            "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
            "LOG_LEVEL": "WARNING",
        }
        env.update(overrides)
        return env

    def init_postgres(self) -> None:
        data = self.workdir / "pg"
        data.mkdir()
        shutil.chown(data, "postgres", "postgres")
        made = subprocess.run(
            [
                *as_postgres(),
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=False,
            capture_output=True,
            text=True,
            env=self.base_env(),
        )
        if made.returncode != 0:
            raise RuntimeError(f"initdb failed: {made.stderr[-2000:]}")
        with open(data / "pg_hba.conf", "a") as hba:  # the hosts of the private switch, nobody else
            hba.write(f"host all all {SUBNET}.0/24 trust\n")

    def start_postgres(self) -> None:
        data = self.workdir / "pg"
        # A postmaster.pid left by the SIGKILLed server is stale: PostgreSQL replaces it itself, since
        # kill_postgres() waited until no process of the old server remained.
        self.spawn(
            "postgres",
            "db",
            [
                *as_postgres(),
                str(PG_BIN / "postgres"),
                "-D",
                str(data),
                "-c",
                f"listen_addresses=127.0.0.1,{self.addr('db')}",
                "-c",
                f"port={PG_PORT}",
                "-c",
                f"unix_socket_directories={data}",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=64MB",
            ],
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [
                    *self.net.hosts["db"].exec_prefix(),
                    str(PG_BIN / "pg_isready"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(PG_PORT),
                    "-U",
                    "postgres",
                ],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                break
            if not self.procs["postgres"].alive():
                raise RuntimeError(f"postgres exited: {self.procs['postgres'].log.read_text()[-2000:]}")
            time.sleep(0.2)
        else:
            raise RuntimeError("postgres did not become ready")
        if not (data / "created").exists():
            subprocess.run(
                [
                    *self.net.hosts["db"].exec_prefix(),
                    str(PG_BIN / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "metriport",
                ],
                check=True,
                capture_output=True,
            )
            (data / "created").touch()

    def start_redis(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.spawn(
            "redis",
            "broker",
            [
                binary,
                "--bind",
                self.addr("broker"),
                "--port",
                str(REDIS_PORT),
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--dir",
                str(self.workdir),
            ],
        )
        wait_tcp(self.addr("broker"), REDIS_PORT, timeout=20, proc=self.procs["redis"])

    def start_s3(self) -> None:
        proc = self.spawn("seaweed", "s3", [sys.executable, "-m", "devtools.seaweed"])
        deadline = time.monotonic() + 120
        endpoint = ""
        while time.monotonic() < deadline and not endpoint:
            for line in proc.log.read_text(errors="replace").splitlines():
                if line.startswith("export S3_ENDPOINT_URL="):
                    endpoint = line.split("=", 1)[1]
            if not proc.alive():
                raise RuntimeError(f"seaweed exited: {proc.log.read_text()[-2000:]}")
            time.sleep(0.3)
        if not endpoint:
            raise RuntimeError("seaweed did not start")
        local = endpoint.removeprefix("http://")
        self.spawn("s3-relay", "s3", self.relay_args(f"{self.addr('s3')}:{S3_PORT}", local))
        wait_tcp(self.addr("s3"), S3_PORT, timeout=20, proc=self.procs["s3-relay"])

    # --- process faults -----------------------------------------------------------------------------------

    def kill_postgres(self) -> None:
        self.procs["postgres"].kill()  # SIGKILL to the postmaster and every backend: a crash, WAL replay next

    def kill_redis(self) -> None:
        self.procs["redis"].kill()

    def latency(self, on: bool) -> None:
        self.procs["pg-relay"].signal(signal.SIGUSR1 if on else signal.SIGUSR2)

    def freeze(self, host: str) -> None:
        self.procs[host].signal(signal.SIGSTOP)

    def thaw(self, host: str) -> None:
        self.procs[host].signal(signal.SIGCONT)

    # --- teardown -----------------------------------------------------------------------------------------

    def destroy(self, keep_dir: bool = False) -> None:
        for proc in self.procs.values():
            proc.signal(signal.SIGCONT)
            proc.kill()
        self.net.destroy()
        if not keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def as_postgres() -> list[str]:
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]


def wait_tcp(host: str, port: int, *, timeout: float, proc: Proc | None = None) -> None:
    """Waits until host:port accepts a connection from this thread's host."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited: {proc.log.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection((host, port), 1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{host}:{port} not reachable after {timeout}s")
