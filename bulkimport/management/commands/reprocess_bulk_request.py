from django.core.management.base import BaseCommand, CommandError

from bulkimport.services import ReprocessRefused, bulk_request_reprocess
from metriport_bulk.lib.ids import as_uuid


class Command(BaseCommand):
    help = (
        "Reprocesses a bulk request. A processing request (e.g. its worker died) is resumed now. A completed "
        "request has its rows re-validated from the stored input file (all, or only the failed ones with "
        "--failed-only) and goes through the pipeline again: rows now valid are applied, their new Document "
        "Queries waited for, the result CSV rewritten and a new webhook sent. A completed import's reprocess is "
        "checked against the customer's Document Query budget with the queries it would start; over it, nothing "
        "is changed. Exit code 0 on success, 1 when the request cannot be reprocessed (the reason is printed)."
    )

    def add_arguments(self, parser):
        parser.add_argument("request_id", help="The bulk request id.")
        parser.add_argument("--failed-only", action="store_true", help="Only re-validate rows that failed.")

    def handle(self, *args, request_id: str, failed_only: bool, **options):
        request_uuid = as_uuid(request_id)
        if request_uuid is None:
            raise CommandError(f"Not a request id: {request_id}")
        try:
            outcome = bulk_request_reprocess(request_id=request_uuid, failed_only=failed_only)
        except ReprocessRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{request_id}: {outcome}")
