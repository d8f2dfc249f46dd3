"""A web process's request latency with and without the freeze of its boot objects (deploy/gunicorn.conf.py's
post_worker_init, metriport_bulk.runtime.freeze_boot_objects): gunicorn with the bundled config on the embedded
default (a temporary DATA_DIR), one client asking for the bulk request list --requests times over a kept-alive
connection. Prints the median, p99, p99.9 and slowest request, and each web process's full (generation 2)
collections, recorded by bench/gcstats/sitecustomize.py. The two variants run alternately, --rounds times (this
machine drifts); `without` is the bundled config with post_worker_init left out.

Usage: .venv/bin/python bench/web_latency.py [--requests 4000] [--rounds 2] [--port 8765]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from _stack import ROOT, gc_recorded, gc_recording

BIN = Path(sys.executable).parent
CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
# The bundled config but for its post_worker_init hook.
WITHOUT_FREEZE = f"""
import runpy
globals().update(
    {{k: v for k, v in runpy.run_path({str(CONFIG)!r}).items() if not k.startswith("__") and k != "post_worker_init"}}
)
"""


def run(args: argparse.Namespace, config: Path, tmp: Path) -> tuple[list[float], dict[int, list[float]]]:
    data, collections = tmp / "data", tmp / "gc"
    for folder in (data, collections):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
    env = {**os.environ, "DATA_DIR": str(data), "DJANGO_SETTINGS_MODULE": "metriport_bulk.settings"}
    manage = [str(BIN / "python"), "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    created = subprocess.run(
        [*manage, "create_customer", "Latency probe", "--with-key"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    key = next(line.split("=", 1)[1] for line in created.stdout.decode().splitlines() if line.startswith("api_key="))
    web_env = gc_recording({**env, "GUNICORN_BIND": f"127.0.0.1:{args.port}"}, collections)
    web = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", str(config), "metriport_bulk.wsgi"],
        cwd=ROOT,
        env=web_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        session = requests.Session()
        session.headers["x-api-key"] = key
        url = f"http://127.0.0.1:{args.port}/medical/v1/patient/bulk"
        deadline = time.monotonic() + 60
        while True:
            try:
                if session.get(url, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("gunicorn did not answer within 60 s")
            time.sleep(0.2)
        times = []
        for _ in range(args.requests):
            started = time.perf_counter()
            response = session.get(url, timeout=30)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=60)
    full = {pid: [ms for generation, ms in runs if generation == 2] for pid, runs in gc_recorded(collections).items()}
    return sorted(times), full


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        without = Path(tmp) / "without_freeze.conf.py"
        without.write_text(WITHOUT_FREEZE)
        for round_ in range(1, args.rounds + 1):
            for label, config in (("without freeze", without), ("with freeze", CONFIG)):
                times, full = run(args, config, Path(tmp))
                n = len(times)
                quantiles = [times[n // 2], times[int(n * 0.99)], times[int(n * 0.999)], times[-1]]
                print(
                    f"round {round_}, {label}: median {quantiles[0] * 1000:.1f} ms, p99 {quantiles[1] * 1000:.1f} ms, "
                    f"p99.9 {quantiles[2] * 1000:.1f} ms, slowest {quantiles[3] * 1000:.1f} ms"
                )
                for pid, durations in full.items():
                    print(
                        f"  process {pid}: full collections (ms, in order) " + " ".join(f"{d:.0f}" for d in durations)
                    )


if __name__ == "__main__":
    main()
