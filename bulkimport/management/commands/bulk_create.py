from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bulkimport import selectors, services
from bulkimport.management.progress import summary_lines, wait_with_progress
from bulkimport.models import BulkStatus
from metriport_bulk.lib import storage
from metriport_bulk.lib.ids import as_uuid
from patients.models import Facility


class Command(BaseCommand):
    help = (
        "Runs a Bulk Patient Create from the shell: stores FILE as the upload of a new request for FACILITY, "
        "waits for the pipeline with a progress bar and prints a summary. In the embedded default it runs the "
        "worker in this process; with BROKER_URL set the running workers do the work. "
        "Exit code 0 when the request completed, 1 when it failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--facility", required=True, help="Facility id (the customer is the facility's).")
        parser.add_argument("--file", required=True, help="Path of the patients CSV.")
        parser.add_argument("--dry-run", action="store_true", help="Validate only; create nothing.")
        parser.add_argument("--timeout", type=float, default=3600, help="Seconds to wait for completion.")
        parser.add_argument("--result", help="Also copy the result CSV to this path.")

    def handle(self, *args, **options):
        facility_uuid = as_uuid(options["facility"])
        facility = (
            Facility.objects.filter(id=facility_uuid).select_related("customer").first() if facility_uuid else None
        )
        if facility is None:
            raise CommandError(f"No facility with id {options['facility']}.")
        path = options["file"]
        if not os.path.isfile(path):
            raise CommandError(f"No such file: {path}")
        if settings.EMBEDDED_WORKER:
            from metriport_bulk.runtime import start_embedded_worker

            start_embedded_worker()
        request = services.bulk_request_create(
            customer=facility.customer, facility_id=str(facility.id), dry_run=options["dry_run"]
        )
        with open(path, "rb") as stream:
            services.bulk_request_submit_file(request=request, stream=stream, size=os.path.getsize(path))
        request = wait_with_progress(request.id, timeout=options["timeout"], stream=self.stderr._out)
        for line in summary_lines(request):
            self.stdout.write(line)
        for code, rows in selectors.bulk_error_counts(request_id=request.id)[:10]:
            self.stdout.write(f"  {rows:>7} rows: {code}")
        if request.status == BulkStatus.COMPLETED:
            self.stdout.write(f"result:     {request.result_key}")
            if options["result"]:
                with storage.open_for_read(request.result_key) as result, open(options["result"], "wb") as out:
                    out.write(result.read())
                self.stdout.write(f"result copied to {options['result']}")
        else:
            raise CommandError(f"bulk request {request.id} ended {request.status}: {request.reason}")
