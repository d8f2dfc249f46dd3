"""The README's main command: the whole Bulk Patient Create flow on the embedded default, end to end."""

from __future__ import annotations

import logging
import os
import threading
import time
import typing
from pathlib import Path

import requests
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, get_internal_wsgi_application
from django.db.models import Count
from django.utils import timezone
from tqdm import tqdm

from bulkimport.management.progress import summary_lines, wait_with_progress
from bulkimport.selectors import bulk_error_counts
from devtools.receiver import Receiver
from devtools.sample import SAMPLE_FACILITY_ADDRESS, write_sample_csv
from docqueries.models import DocumentQuery
from metriport_bulk.runtime import SchedulerThread, start_embedded_worker
from patients.models import Customer
from patients.services import api_key_create, customer_create, facility_create
from patients.validators import npi_with_check_digit
from webhooks.models import MessageStatus, WebhookMessage
from webhooks.signing import metriport_signature_verify

DEMO_CUSTOMER = "Demo Health (metriport-bulk demo)"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # request lines would clutter the progress bar
        pass


SHOWN_ERROR_CODES = 8  # the most frequent; the others are named after them


class Command(BaseCommand):
    help = (
        "Runs the whole bulk flow on the embedded default (SQLite, local files, in-process worker): migrates, "
        "creates a demo customer, API key and facility, generates a sample CSV, creates a bulk request over "
        "HTTP, uploads the file through the returned URL, processes it and prints a summary with the result "
        "file's path."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=2_000, help="Rows of the generated sample CSV.")
        parser.add_argument("--invalid-ratio", type=float, default=0.05, help="Share of deliberately invalid rows.")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--file", help="Use this CSV instead of a generated one.")
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument(
            "--webhook-wait",
            type=float,
            default=120,
            help="Seconds to wait for the run's webhooks to be delivered before stopping (default 120).",
        )

    def handle(self, *args, **options):
        started = timezone.now()
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(f"data directory: {settings.DATA_DIR}")
        server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler)
        server.set_app(get_internal_wsgi_application())
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        settings.PUBLIC_BASE_URL = base_url  # upload and result URLs point at this server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        worker = scheduler = None
        if settings.EMBEDDED_WORKER:
            worker = start_embedded_worker()
            scheduler = SchedulerThread()
            scheduler.start()

        customer = Customer.objects.filter(name=DEMO_CUSTOMER).first() or customer_create(name=DEMO_CUSTOMER)
        api_key = api_key_create(customer=customer, name=f"demo {time.strftime('%Y-%m-%d %H:%M:%S')}").clear_key
        facility = customer.facilities.first() or facility_create(
            customer=customer,
            name="Demo Clinic",
            npi=npi_with_check_digit("123456789"),
            address=dict(SAMPLE_FACILITY_ADDRESS),
        )
        path = Path(options["file"] or Path(settings.DATA_DIR) / "demo" / f"patients-{options['rows']}.csv")
        if not options["file"]:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as out:
                write_sample_csv(out, options["rows"], invalid_ratio=options["invalid_ratio"], seed=options["seed"])
            self.stdout.write(f"sample CSV: {path} ({options['rows']} rows)")

        session = requests.Session()
        session.headers["x-api-key"] = api_key
        # A local webhook receiver, subscribed the way a customer does it (POST /settings, ping/pong).
        settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
        receiver = Receiver().start()
        subscribed = session.post(f"{base_url}/settings", json={"webhookUrl": receiver.url}, timeout=30)
        if subscribed.status_code != 200:
            raise CommandError(f"webhook subscription failed: {subscribed.status_code} {subscribed.text}")
        webhook_key = subscribed.json()["webhookKey"]
        self.stdout.write(f"POST /settings -> webhook receiver {receiver.url} answered the ping")
        created = session.post(
            f"{base_url}/medical/v1/patient/bulk",
            params={"facilityId": str(facility.id), "dryRun": "true" if options["dry_run"] else "false"},
            timeout=30,
        )
        if created.status_code != 200:
            raise CommandError(f"create failed: {created.status_code} {created.text}")
        body = created.json()
        self.stdout.write(f"POST /medical/v1/patient/bulk -> {body['status']} requestId={body['requestId']}")
        with open(path, "rb") as stream:
            upload = requests.put(body["uploadUrl"], data=stream, headers={"content-type": "text/csv"}, timeout=300)
        if upload.status_code != 200:
            raise CommandError(f"upload failed: {upload.status_code} {upload.text}")
        self.stdout.write(f"PUT uploadUrl -> {upload.status_code} ({os.path.getsize(path):,} bytes)")

        request = wait_with_progress(body["requestId"], stream=self.stderr._out)
        final = session.get(f"{base_url}/medical/v1/patient/bulk/{body['requestId']}", timeout=30).json()
        self.stdout.write("")
        for line in summary_lines(request):
            self.stdout.write(line)
        error_counts = bulk_error_counts(request_id=request.id)
        for code, rows in error_counts[:SHOWN_ERROR_CODES]:
            self.stdout.write(f"  {rows:>7} rows with {code}")
        if len(error_counts) > SHOWN_ERROR_CODES:
            rest = error_counts[SHOWN_ERROR_CODES:]
            self.stdout.write(
                f"  and {len(rest)} more error codes ({sum(rows for _, rows in rest):,} errors): "
                + ", ".join(code for code, _ in rest)
            )
        if final["status"] != "completed":
            raise CommandError(f"bulk request ended {final['status']}: {final['reason']}")
        result = session.get(final["result"], timeout=60)
        result_path = path.with_name(f"result-{body['requestId']}.csv")
        result_path.write_bytes(result.content)
        self.stdout.write(f"result CSV: {result_path}")
        self._report_document_queries(body["requestId"])
        pending = self._wait_for_webhooks(customer, started, options["webhook_wait"])
        # Delivery stops before the receiver does: no attempt ever meets a closed port.
        if scheduler is not None:
            scheduler.stop()
        if worker is not None:
            logging.getLogger("dramatiq.worker").setLevel(logging.WARNING)  # its "Shutting down" lines
            worker.stop()
        self._report_webhooks(receiver, webhook_key, body["requestId"], pending)
        receiver.stop()
        server.shutdown()

    def _report_document_queries(self, request_id: str) -> None:
        """Document Queries finish after the request (the sandbox network answers after a delay)."""
        queries = DocumentQuery.objects.filter(bulk_request_id=request_id)
        deadline = time.monotonic() + 60
        while queries.filter(status="processing").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        counts = dict(queries.values_list("status").annotate(n=Count("id")).order_by())
        self.stdout.write(
            f"doc queries: {', '.join(f'{n} {status}' for status, n in sorted(counts.items())) or 'none'}"
        )

    def _wait_for_webhooks(self, customer: Customer, since, wait: float) -> int:
        """Waits, with a progress bar, until every webhook message of this run is delivered (or has failed for
        good), at most `wait` seconds. Returns how many are still pending."""
        messages = WebhookMessage.objects.filter(customer=customer, created_at__gte=since)
        deadline = time.monotonic() + wait
        bar = tqdm(
            total=messages.count(),
            unit="webhooks",
            desc="webhooks",
            file=typing.cast(typing.TextIO, self.stderr._out),
            dynamic_ncols=True,
        )
        try:
            while True:
                counts = dict(messages.values_list("status").annotate(n=Count("id")).order_by())
                bar.total = sum(counts.values())
                bar.n = bar.total - counts.get(MessageStatus.PENDING, 0)
                bar.refresh()
                pending = counts.get(MessageStatus.PENDING, 0)
                if not pending or time.monotonic() > deadline:
                    return pending
                time.sleep(0.25)
        finally:
            bar.close()

    def _report_webhooks(self, receiver: Receiver, key: str, request_id: str, pending: int) -> None:
        def bulk_statuses(items) -> list[str]:
            return [
                i.json()["bulkPatientCreate"]["status"]
                for i in items
                if b"bulkPatientCreate" in i.body and i.json()["meta"].get("requestId") == request_id
            ]

        received = receiver.snapshot()
        verified = all(
            metriport_signature_verify(body=i.body, key=key, signature=i.headers.get("x-metriport-signature", ""))
            for i in received
        )
        types = sorted({i.json()["meta"]["type"] for i in received if i.body})
        self.stdout.write(
            f"webhooks:   {len(received):,} received ({', '.join(types)}); bulk statuses "
            f"{' -> '.join(bulk_statuses(received))}; signatures {'verified' if verified else 'NOT verified'}"
        )
        if pending:
            self.stdout.write(
                f"            {pending:,} not delivered yet when the demo stopped waiting (--webhook-wait); "
                "delivery stopped with the demo"
            )
