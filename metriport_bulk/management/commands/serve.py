import os

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from metriport_bulk.runtime import SchedulerThread, start_embedded_worker


def public_base_url(addrport: str) -> str:
    """`8011`, `127.0.0.1:8011`, `0.0.0.0:8011` or `[::1]:8011` -> the URL a client on this machine uses."""
    host, _, port = addrport.rpartition(":")
    if not host:
        host = "127.0.0.1"
    if host in ("0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


class Command(BaseCommand):
    help = (
        "Serves the API (Django's threaded server). In the embedded default (no BROKER_URL) it also runs the "
        "Dramatiq worker and the scheduler in this process, so nothing else is needed. For production use "
        "gunicorn + `manage.py rundramatiq` + `manage.py run_scheduler`."
    )

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args, addrport: str, **options):
        if not settings.PUBLIC_BASE_URL_FROM_ENV:
            # Upload and download URLs point at the address actually served (PUBLIC_BASE_URL overrides it).
            settings.PUBLIC_BASE_URL = public_base_url(addrport)
            self.stdout.write(f"upload and download URLs use {settings.PUBLIC_BASE_URL}")
        if settings.EMBEDDED_WORKER:
            start_embedded_worker()
            SchedulerThread().start()
            self.stdout.write("embedded worker and scheduler started")
        # Django's "WARNING: This is a development server" banner, said here as a plain line instead: a first
        # run shows no warning (README, issue 25), and the way to production is one line away.
        os.environ.setdefault("DJANGO_RUNSERVER_HIDE_WARNING", "true")
        self.stdout.write(
            "a development server: production runs gunicorn -c deploy/gunicorn.conf.py (README, Operations)"
        )
        call_command("runserver", addrport, use_reloader=False, use_threading=True)
