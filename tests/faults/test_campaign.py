"""The short fault campaign of `make test`: the real deployment (gunicorn, two `rundramatiq` hosts, the
scheduler, its own PostgreSQL, Redis and SeaweedFS) on hosts in network namespaces, two customers importing
through the HTTP API while the nemesis kills PostgreSQL (-9, restarted), freezes a worker past its lease,
kills the broker (messages lost) and partitions a worker from the database. The checker's verdict for every
request must be clean: no row lost or duplicated, no second patient for a person, one final webhook after
`processing`, the result CSV of a fault-free run, nothing stuck. The long campaign: scripts/fault_campaign.

Needs root (ip netns). The campaign runs as a subprocess; teardown SIGKILLs whatever is left in its
namespaces and deletes them, also when the run fails or times out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.faults.net import abandoned_namespaces, destroy_namespaces, leftover_namespaces

pytestmark = pytest.mark.real_services  # its own services, but never on the embedded default

ROOT = Path(__file__).resolve().parents[2]
PLAN = "pg-kill,freeze,broker-kill,partition"


@pytest.fixture
def campaign_dir():
    if os.geteuid() != 0:
        pytest.fail("the fault campaign needs root: it builds network namespaces (ip netns)")
    destroy_namespaces(abandoned_namespaces())  # left by a run that was killed before its teardown
    tag = f"t{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="mb-faults-test-"))
    workdir.chmod(0o755)  # PostgreSQL runs as the postgres user below it
    yield tag, workdir
    destroy_namespaces(leftover_namespaces(tag))  # SIGKILL to every process left in them, then `ip netns del`
    assert leftover_namespaces(tag) == []
    shutil.rmtree(workdir, ignore_errors=True)


def test_short_fault_campaign(campaign_dir):
    tag, workdir = campaign_dir
    summary_path = workdir / "summary.json"
    args = [
        sys.executable,
        "-m",
        "tests.faults.campaign",
        "--seed",
        "23",
        "--plan",
        PLAN,
        "--faults",
        "4",
        "--faults-per-run",
        "4",
        "--customers",
        "2",
        "--rows",
        "100",
        "--gap-min",
        "0.5",
        "--gap-max",
        "1.5",
        "--bound",
        "60",
        "--tag",
        tag,
        "--workdir",
        str(workdir / "run"),
        "--json",
        str(summary_path),
    ]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=400)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert summary_path.exists(), output[-5000:]
    summary = json.loads(summary_path.read_text())
    assert summary["error"] == "", output[-5000:]
    # The faults really happened, each once, in the planned order.
    assert [f["kind"] for f in summary["fault_log"]] == PLAN.split(","), output[-3000:]
    assert summary["rows"] == 200
    assert (summary["lost"], summary["duplicated"], summary["stuck"], summary["mismatched"]) == (0, 0, 0, 0), output
    assert summary["problems"] == [], output
    assert process.returncode == 0, output[-3000:]
