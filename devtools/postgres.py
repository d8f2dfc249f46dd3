"""A private, throw-away PostgreSQL cluster: initdb into a temporary directory, a free port, run as the
`postgres` user when the caller is root (PostgreSQL refuses to run as root). For tests that stop a database
(tests/ops/test_readyz.py) and benchmarks that want a server configured their own way (bench/scale.py
--tuned-postgres); never the machine's shared server."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class PostgresServer:
    def __init__(self, settings: dict[str, str] | None = None) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        assert bins, "PostgreSQL server binaries are required (the CI machine has them)"
        self.bin = bins[-1]
        self.settings = settings or {}
        # Not pytest's tmp_path: its parents are private to root, and the server runs as `postgres`.
        self.root = tempfile.mkdtemp(prefix="mb-pg-")
        os.chmod(self.root, 0o755)
        self.dir = Path(self.root) / "pgdata"
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        self.dir.mkdir()
        if self.as_user:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run(f"{self.bin}/initdb", "-D", str(self.dir), "-A", "trust", "-U", "postgres")
        options = " ".join(f"-c {name}={value}" for name, value in self.settings.items())
        self._run(
            f"{self.bin}/pg_ctl", "-D", str(self.dir), "-w", "-l", str(self.dir / "log"),
            "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 {options}", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, f"{self.bin}/pg_ctl", "-D", str(self.dir), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
