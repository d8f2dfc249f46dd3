"""gunicorn configuration for the web processes (README, Production). Every value can be overridden from the
environment: GUNICORN_BIND, WEB_CONCURRENCY, GUNICORN_THREADS, GUNICORN_TIMEOUT.

    gunicorn -c deploy/gunicorn.conf.py metriport_bulk.wsgi

Uploads stream through the web process on local storage only; with S3 (production) clients PUT straight to
S3, so web requests are short and threads are cheap. Static files are served by the app (WhiteNoise)."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# A restarted worker now and then bounds slow memory growth; the jitter keeps them from restarting together.
max_requests = 2000
max_requests_jitter = 200
# Behind a reverse proxy: trust its X-Forwarded-* only from the proxy's address (FORWARDED_ALLOW_IPS).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"  # request lines to stdout; our own logs carry ids only, and query strings hold no PHI
errorlog = "-"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'  # the path without its query string
# Signed URL tokens (upload and download links) redacted from the access and error lines; LOG_FORMAT=json
# makes both JSON lines like the app's own.
logger_class = "metriport_bulk.ops.access_log.RedactingLogger"


def post_worker_init(worker):
    """Each web process, once it has loaded the app and its URL patterns (the views, serializers and admin they
    import), freezes what it holds, as a worker process does (metriport_bulk.runtime.freeze_boot_objects): a full
    collection no longer walks it. Unfrozen, a full collection held a request 30-60 ms about every 1,000 requests
    (bench/web_latency.py)."""
    from django.urls import get_resolver

    from metriport_bulk.runtime import freeze_boot_objects

    get_resolver().url_patterns  # noqa: B018 (imports every view module now, not in the first request)
    freeze_boot_objects()
