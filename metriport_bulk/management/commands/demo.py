"""The README's main command: the whole Bulk Patient Create flow on the embedded default, end to end."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import requests
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, get_internal_wsgi_application

from bulkimport.management.progress import summary_lines, wait_with_progress
from bulkimport.sample import write_sample_csv
from bulkimport.selectors import bulk_error_counts
from metriport_bulk.runtime import SchedulerThread, start_embedded_worker
from patients.models import Customer
from patients.services import api_key_create, customer_create, facility_create
from patients.validators import npi_with_check_digit

DEMO_CUSTOMER = "Demo Health (metriport-bulk demo)"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # request lines would clutter the progress bar
        pass


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

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler)
        server.set_app(get_internal_wsgi_application())
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        settings.PUBLIC_BASE_URL = base_url  # upload and result URLs point at this server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        if settings.EMBEDDED_WORKER:
            start_embedded_worker()
            SchedulerThread().start()

        customer = Customer.objects.filter(name=DEMO_CUSTOMER).first() or customer_create(name=DEMO_CUSTOMER)
        api_key = api_key_create(customer=customer, name=f"demo {time.strftime('%Y-%m-%d %H:%M:%S')}").clear_key
        facility = customer.facilities.first() or facility_create(
            customer=customer,
            name="Demo Clinic",
            npi=npi_with_check_digit("123456789"),
            address={"addressLine1": "1 Main St", "addressLine2": None, "city": "Springfield", "state": "IL", "zip": "62701", "country": "USA"},
        )
        path = Path(options["file"] or Path(settings.DATA_DIR) / "demo" / f"patients-{options['rows']}.csv")
        if not options["file"]:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as out:
                write_sample_csv(out, options["rows"], invalid_ratio=options["invalid_ratio"], seed=options["seed"])
            self.stdout.write(f"sample CSV: {path} ({options['rows']} rows)")

        session = requests.Session()
        session.headers["x-api-key"] = api_key
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
        for code, rows in bulk_error_counts(request_id=request.id)[:8]:
            self.stdout.write(f"  {rows:>7} rows with {code}")
        if final["status"] != "completed":
            raise CommandError(f"bulk request ended {final['status']}: {final['reason']}")
        result = session.get(final["result"], timeout=60)
        result_path = path.with_name(f"result-{body['requestId']}.csv")
        result_path.write_bytes(result.content)
        self.stdout.write(f"result CSV: {result_path}")
        server.shutdown()
