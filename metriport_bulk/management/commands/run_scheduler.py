from django.core.management.base import BaseCommand

from metriport_bulk.runtime import run_scheduled_jobs_once, run_scheduler_forever


class Command(BaseCommand):
    help = (
        "Runs the periodic jobs (notice S3 uploads, expire waiting requests, resume stale work, deliver due "
        "webhooks) every SCHEDULER_INTERVAL_SECONDS. Idempotent: running two is harmless."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run every job once and exit.")
        parser.add_argument("--interval", type=float, default=None, help="Seconds between runs.")

    def handle(self, *args, once: bool, interval: float | None, **options):
        if once:
            run_scheduled_jobs_once()
            return
        run_scheduler_forever(interval)
