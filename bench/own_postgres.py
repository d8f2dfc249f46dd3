"""A PostgreSQL server of the benchmark's own (initdb into a temporary directory, a free port), for runs that
should not depend on how the machine's shared server is configured: `--tuned-postgres` of bench/scale.py
gives it the memory and WAL settings a production server of a million-row import would have. Never touches
the shared server. As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path(os.environ.get("BENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))
# What a production server would set for bulk imports of a million rows (the shared server keeps
# PostgreSQL's defaults: 128 MB of shared buffers and a checkpoint every 1 GB of WAL).
TUNED = {
    "shared_buffers": "1GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    "work_mem": "16MB",
    "maintenance_work_mem": "256MB",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres() -> list[str]:
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if os.geteuid() == 0 else []


@contextlib.contextmanager
def own_postgres(settings: dict[str, str]) -> Iterator[str]:
    """Yields the admin URL (database `postgres`) of a fresh server with `settings`; removes it afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    data = workdir / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
        shutil.chown(data, "postgres", "postgres")
    initdb = [str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
    subprocess.run([*_as_postgres(), *initdb], check=True, capture_output=True)
    port = _free_port()
    options = [item for name, value in settings.items() for item in ("-c", f"{name}={value}")]
    command = [str(PG_BIN / "postgres"), "-D", str(data), "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}"]
    command += ["-c", f"unix_socket_directories={workdir}", *options]
    log = open(workdir / "postgres.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen([*_as_postgres(), *command], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            ready = subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], check=False)
            if ready.returncode == 0:
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"own PostgreSQL did not start: {(workdir / 'postgres.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
