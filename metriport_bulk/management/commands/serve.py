from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from metriport_bulk.runtime import SchedulerThread, start_embedded_worker


class Command(BaseCommand):
    help = (
        "Serves the API (Django's threaded server). In the embedded default (no BROKER_URL) it also runs the "
        "Dramatiq worker and the scheduler in this process, so nothing else is needed. For production use "
        "gunicorn + `manage.py rundramatiq` + `manage.py run_scheduler`."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args, addrport: str, **options):
        if settings.EMBEDDED_WORKER:
            start_embedded_worker()
            SchedulerThread().start()
            self.stdout.write("embedded worker and scheduler started")
        call_command("runserver", addrport, use_reloader=False, use_threading=True)
