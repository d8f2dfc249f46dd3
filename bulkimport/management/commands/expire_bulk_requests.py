from django.core.management.base import BaseCommand

from bulkimport.services import bulk_requests_expire


class Command(BaseCommand):
    help = (
        "Moves waiting bulk requests older than UPLOAD_URL_EXPIRY_SECONDS (10 minutes) to expired; with S3, "
        "uploads made in time are noticed first. The scheduler does this continuously; this command is for "
        "cron-style deployments and operators. Exit code 0."
    )

    def handle(self, *args, **options):
        self.stdout.write(f"expired {bulk_requests_expire()} request(s)")
