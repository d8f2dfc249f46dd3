"""A Jepsen-style fault campaign against the real deployment on several hosts (issue 23).

    python -m tests.faults.campaign [--seed N] [--faults 200] [--customers 3] [--rows 300]   (as root)

Builds the hosts (tests.faults.net, tests.faults.cluster), runs each customer's file once without faults (the
reference), then runs after runs: fresh customers import the same files through the real HTTP API (create
the request, PUT the file to the pre-signed S3 URL, poll) while the nemesis (tests.faults.nemesis) injects
faults drawn from the seed; once it has healed the last one, every request must be final within the bound,
and the checker (tests.faults.checker) compares it with its reference. Prints per run, then one line:

    runs=R faults=F rows=N lost=0 duplicated=0 stuck=0 mismatched=0 seed=S

and writes the same as JSON (--json). Exit status 0 only when nothing was lost, duplicated, stuck or wrong.
Every namespace and process is removed at exit, also on failure or SIGTERM.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from tests.faults import net
from tests.faults.checker import FINAL, Tally, check_request, webhook_deliveries
from tests.faults.cluster import HOOK_PORT, HOSTS, WEB_PORT, Cluster
from tests.faults.nemesis import KINDS, Nemesis

STALE_SECONDS = 3


def app_overrides() -> dict[str, str]:
    """Short bounds so the sweeper's recovery shows within a run (BULK_STALE_SECONDS is the lease)."""
    return {
        "BULK_STALE_SECONDS": str(STALE_SECONDS),
        "BULK_CHUNK_SIZE": "25",
        "SCHEDULER_INTERVAL_SECONDS": "0.5",
        "DOCQUERY_SANDBOX_DELAY_SECONDS": "0.2",
        "DOCQUERY_SWEEP_GRACE_SECONDS": "2",
        "DOCQUERY_RETRY_BASE_SECONDS": "1",
        "WEBHOOK_TIMEOUT_SECONDS": "2",
        "DOCQUERY_RATE_LIMIT_PER_MINUTE": "100000",  # the sandbox gateway: the imports, not the quota, set the pace
    }


@dataclass
class Submitted:
    label: str
    slot: int
    customer_id: str
    facility_id: str
    api_key: str
    request_id: str = ""
    error: str = ""


class Client:
    """A customer's side, over HTTP from the client host; retries what a careful client retries."""

    def __init__(self, base_url: str, api_key: str, deadline: float) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["x-api-key"] = api_key
        self.deadline = deadline

    def _retry(self, call, ok=(200,)) -> requests.Response:
        last = ""
        while time.monotonic() < self.deadline:
            try:
                response = call()
                if response.status_code in ok:
                    return response
                last = f"{response.status_code} {response.text[:200]}"
                if response.status_code < 500 and response.status_code != 429:
                    raise RuntimeError(last)
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.5)
        raise RuntimeError(f"gave up: {last}")

    def set_webhook(self, url: str) -> None:
        self._retry(lambda: self.session.post(f"{self.base_url}/settings", json={"webhookUrl": url}, timeout=10))

    def import_file(self, facility_id: str, body: bytes) -> str:
        created = self._retry(
            lambda: self.session.post(
                f"{self.base_url}/medical/v1/patient/bulk", params={"facilityId": facility_id}, timeout=10
            )
        ).json()
        self._retry(lambda: requests.put(created["uploadUrl"], data=body, timeout=10))
        return created["requestId"]

    def status(self, request_id: str) -> dict:
        return self._retry(
            lambda: self.session.get(f"{self.base_url}/medical/v1/patient/bulk/{request_id}", timeout=10)
        ).json()

    def result_rows(self, request_id: str) -> list[dict] | None:
        url = self.status(request_id).get("result")
        if not url:
            return None
        body = self._retry(lambda: requests.get(url, timeout=30)).content.decode("utf-8")
        return list(csv.DictReader(io.StringIO(body, newline="")))


class Campaign:
    def __init__(self, args: argparse.Namespace, seed: int) -> None:
        self.args = args
        self.seed = seed
        self.rng = random.Random(seed)
        tag = args.tag or str(os.getpid())
        workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mb-faults-"))
        self.cluster = Cluster(tag=tag, workdir=workdir)
        self.total = Tally()
        self.faults: list[dict] = []
        self.runs = 0
        self.checked = 0  # runs that reached the checker (an interrupted one does not count)
        self.recoveries: list[float] = []  # seconds from the last heal to every request final, per run
        self.files: list[bytes] = []
        self.references: list[tuple[list[dict], int]] = []

    @property
    def base_url(self) -> str:
        return f"http://{self.cluster.addr('web')}:{WEB_PORT}"

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def setup(self) -> None:
        self.cluster.net.create(HOSTS)
        net.enter(self.cluster.net.hosts["client"].netns)  # this process is the client host from here on
        self.cluster.start_services(app_overrides())
        os.environ.update(self.cluster.app_env)
        import django

        django.setup()
        self.cluster.start_app()
        from tests.helpers.bulk import sample_bytes

        self.files = [
            sample_bytes(self.args.rows, invalid_ratio=0.05, seed=self.seed % 10_000 + slot)
            for slot in range(self.args.customers)
        ]

    def tenants(self, prefix: str) -> list[Submitted]:
        from tests.helpers.factories import make_tenant

        made = []
        for slot in range(self.args.customers):
            tenant = make_tenant(f"{prefix} customer {slot}")
            made.append(
                Submitted(
                    label=f"{prefix}/c{slot}",
                    slot=slot,
                    customer_id=str(tenant.customer.id),
                    facility_id=str(tenant.facility.id),
                    api_key=tenant.api_key,
                )
            )
        return made

    def submit_all(self, subs: list[Submitted], deadline: float) -> None:
        def submit(sub: Submitted) -> None:
            try:
                client = Client(self.base_url, sub.api_key, deadline)
                client.set_webhook(f"http://{self.cluster.addr('hook')}:{HOOK_PORT}/{sub.label}")
                sub.request_id = client.import_file(sub.facility_id, self.files[sub.slot])
            except Exception as exc:  # noqa: BLE001 - reported by the run
                sub.error = f"{type(exc).__name__}: {exc}"

        threads = [threading.Thread(target=submit, args=(s,)) for s in subs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def all_final(self, subs: list[Submitted]) -> bool:
        from bulkimport.models import BulkRequest

        ids = [s.request_id for s in subs if s.request_id]
        if len(ids) < len(subs):
            return False
        statuses = BulkRequest.objects.filter(id__in=ids).values_list("status", flat=True)
        if sum(1 for s in statuses if s in FINAL) < len(ids):
            return False
        finals = set()
        for d in webhook_deliveries(self.cluster.workdir / "webhooks.jsonl"):
            body = d["body"].get("bulkPatientCreate", {}) if isinstance(d["body"], dict) else {}
            if body.get("status") in FINAL:
                finals.add(body.get("requestId"))
        return all(i in finals for i in ids)

    def progress(self, subs: list[Submitted]) -> tuple:
        """What moves while a request advances: its status, phase and rows applied, its Document Queries
        ended, the webhooks received."""
        from bulkimport.models import BulkRequest
        from docqueries.models import DocumentQuery

        ids = [s.request_id for s in subs if s.request_id]
        return (
            tuple(BulkRequest.objects.filter(id__in=ids).order_by("id").values_list("status", "phase", "processed")),
            DocumentQuery.objects.filter(bulk_request_id__in=ids).exclude(status="processing").count(),
            len(webhook_deliveries(self.cluster.workdir / "webhooks.jsonl")),
        )

    def wait_final(self, subs: list[Submitted], bound: float) -> float:
        """Seconds until every request is final and its final webhook received, or -1 when they stalled: no
        progress for `bound` seconds (a loaded machine is slow, not stuck: only standing still counts)."""
        from django.db import close_old_connections, connection

        start = last_move = time.monotonic()
        seen: tuple = ()
        while time.monotonic() - last_move < bound and time.monotonic() - start < self.args.cap:
            close_old_connections()
            try:
                if self.all_final(subs):
                    return time.monotonic() - start
                now = self.progress(subs)
                if now != seen:
                    seen, last_move = now, time.monotonic()
            except Exception:  # noqa: BLE001 - the database may still be recovering
                connection.close()
            time.sleep(0.5)
        return -1.0

    def references_run(self) -> None:
        subs = self.tenants("reference")
        self.submit_all(subs, time.monotonic() + 120)
        if any(s.error for s in subs):
            raise RuntimeError(f"reference submit failed: {[s.error for s in subs]}")
        if self.wait_final(subs, 180) < 0:
            raise RuntimeError("the fault-free reference run did not finish")
        from patients.models import Patient

        for sub in subs:
            rows = Client(self.base_url, sub.api_key, time.monotonic() + 60).result_rows(sub.request_id)
            if rows is None:
                raise RuntimeError("the reference run has no result")
            self.references.append((rows, Patient.objects.filter(customer_id=sub.customer_id).count()))
        self.log(f"reference run: {self.args.customers} files of {self.args.rows} rows")

    def run_once(self, faults: int, plan: list[str] | None) -> Tally:
        self.runs += 1
        run = self.runs
        subs = self.tenants(f"run{run}")
        nemesis = Nemesis(
            self.cluster,
            random.Random(self.rng.randrange(2**31)),
            stale_seconds=STALE_SECONDS,
            gap=(self.args.gap_min, self.args.gap_max),
            max_faults=faults,
            plan=plan,
        ).start()
        self.submit_all(subs, time.monotonic() + 300)
        # The faults go on while the imports run (the nemesis has a fault budget per run); a plan is played whole.
        while not nemesis.done() and (plan is not None or not self._settled(subs)):
            time.sleep(0.5)
        nemesis.finish()
        took = self.wait_final(subs, self.args.bound)
        self.recoveries.append(took)
        self.checked += 1
        from django.db import close_old_connections

        close_old_connections()
        tally = Tally()
        deliveries = webhook_deliveries(self.cluster.workdir / "webhooks.jsonl")
        for sub in subs:
            if sub.error or not sub.request_id:
                tally.stuck += 1
                tally.problems.append(f"{sub.label}: never submitted: {sub.error}")
                continue
            rows, patients = self.references[sub.slot]
            result = Client(self.base_url, sub.api_key, time.monotonic() + 60).result_rows(sub.request_id)
            tally.add(
                check_request(
                    label=sub.label,
                    request_id=sub.request_id,
                    customer_id=sub.customer_id,
                    facility_id=sub.facility_id,
                    result_rows=result,
                    reference_rows=rows,
                    reference_patients=patients,
                    deliveries=deliveries,
                )
            )
        injected = [asdict(f) | {"run": run} for f in nemesis.injected]
        self.faults.extend(injected)
        kinds = ",".join(f"{f['kind']}@{f['target']}" for f in injected)
        self.log(
            f"run {run}: faults {len(injected)} [{kinds}], rows {tally.rows}, lost {tally.lost}, duplicated "
            f"{tally.duplicated}, stuck {tally.stuck}, mismatched {tally.mismatched}, final {took:.1f}s after heal"
        )
        for text in tally.problems:
            self.log(f"  PROBLEM {text}")
        return tally

    def _settled(self, subs: list[Submitted]) -> bool:
        try:
            from django.db import close_old_connections

            close_old_connections()
            return self.all_final(subs)
        except Exception:  # noqa: BLE001 - the database may be down (a fault)
            from django.db import connection

            connection.close()
            return False

    def campaign(self) -> None:
        plan = self.args.plan.split(",") if self.args.plan else None
        while len(self.faults) < self.args.faults and self.runs < self.args.max_runs:
            want = min(self.args.faults_per_run, self.args.faults - len(self.faults))
            self.total.add(self.run_once(want, plan))

    def summary(self) -> dict:
        return {
            "runs": self.checked,
            "faults": len(self.faults),
            "rows": self.total.rows,
            "lost": self.total.lost,
            "duplicated": self.total.duplicated,
            "stuck": self.total.stuck,
            "mismatched": self.total.mismatched,
            "webhook_redeliveries": self.total.redelivered,
            "seed": self.seed,
            "error": "",
            "slowest_recovery_seconds": round(max(self.recoveries, default=0.0), 1),
            "by_kind": {k: sum(1 for f in self.faults if f["kind"] == k) for k in KINDS},
            "problems": self.total.problems,
            "fault_log": self.faults,
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=None, help="the nemesis's seed (printed; random when omitted)")
    parser.add_argument("--faults", type=int, default=200, help="stop once this many faults were injected")
    parser.add_argument("--faults-per-run", type=int, default=8)
    parser.add_argument("--max-runs", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=3)
    parser.add_argument("--rows", type=int, default=300, help="rows per customer's file")
    parser.add_argument("--gap-min", type=float, default=0.5, help="seconds between faults, at least")
    parser.add_argument("--gap-max", type=float, default=3.0)
    parser.add_argument(
        "--bound", type=float, default=60.0, help="stuck: no progress for this long after the last heal"
    )
    parser.add_argument("--cap", type=float, default=600.0, help="stuck: not final this long after the last heal")
    parser.add_argument("--plan", default="", help=f"an exact sequence of fault kinds per run, of {','.join(KINDS)}")
    parser.add_argument("--json", default="", help="write the summary here")
    parser.add_argument("--tag", default="", help="namespace names' tag (default: the pid)")
    parser.add_argument("--workdir", default="", help="the run's directory (made, emptied and removed by the caller)")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (logs) after exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("the fault campaign needs root (network namespaces)", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**9)
    campaign = Campaign(args, seed)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # teardown below runs on SIGTERM too
    campaign.log(f"seed {seed}; hosts in namespaces mbf{campaign.cluster.tag}-*; logs in {campaign.cluster.workdir}")
    if not net.netem_available():
        campaign.log("sch_netem is not in this kernel: latency comes from the link relay (tests/faults/linkproxy.py)")
    summary: dict = {"seed": seed, "error": ""}
    try:
        campaign.setup()
        campaign.references_run()
        campaign.campaign()
        summary = campaign.summary()
    except BaseException as exc:
        summary = campaign.summary() | {"error": f"{type(exc).__name__}: {exc}"}
        raise
    finally:
        failed = bool(summary.get("error"))
        campaign.cluster.destroy(keep_dir=args.keep or failed)
        names = {
            "runs": "runs",
            "faults": "faults_injected",
            "rows": "rows_checked",
            "lost": "lost",
            "duplicated": "duplicated",
            "stuck": "stuck",
            "mismatched": "mismatched",
            "seed": "seed",
        }
        line = " ".join(f"{label}={summary.get(key)}" for key, label in names.items())
        print(line, flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=1))
    ok = not (
        summary["lost"] or summary["duplicated"] or summary["stuck"] or summary["mismatched"] or summary["problems"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
