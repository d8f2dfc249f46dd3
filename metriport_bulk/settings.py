"""metriport-bulk settings: one module, driven by environment variables, with embedded defaults.

Embedded default (nothing set): SQLite under DATA_DIR, local file storage, an in-process Dramatiq worker.
Production: DATABASE_URL (PostgreSQL), S3_BUCKET (+ endpoint/credentials), BROKER_URL (redis:// or amqp://).
Every variable is listed in the README's configuration table.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

from metriport_bulk.lib import csvio

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


DATA_DIR = Path(env("DATA_DIR", str(BASE_DIR / "var")))


def _install_secret_key(data_dir: Path) -> str:
    """The embedded default's SECRET_KEY: random, made once per install and kept under DATA_DIR (mode 600),
    never a constant shipped in the code. Set SECRET_KEY in production (several web processes share it)."""
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY_FROM_ENV = bool(env("SECRET_KEY"))  # `check --deploy` warns when it is the per-install one
SECRET_KEY = env("SECRET_KEY") or _install_secret_key(DATA_DIR)
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in env("ALLOWED_HOSTS", "*").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]
# Absolute base URL clients use to reach this service (local upload URLs are built from it).
# Facility OIDs are <OID_ROOT>.<customer>.5.<facility>; set it to your organization's registered arc.
OID_ROOT = env("OID_ROOT", "2.25").rstrip(".")
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
PUBLIC_BASE_URL_FROM_ENV = bool(env("PUBLIC_BASE_URL"))  # else `manage.py serve` follows its own address

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_dramatiq",
    "metriport_bulk",
    "patients",
    "bulkimport",
    "webhooks",
    "docqueries",
    "idempotency",
    "cohorts",
    "axes",
    # The demo, sample CSVs and the local webhook receiver: no product app imports it, so a production
    # deployment may leave it out.
    "devtools",
]

MIDDLEWARE = [
    "metriport_bulk.ops.metrics.RequestMetricsMiddleware",  # first: it counts every answer, errors included
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, Swagger UI) served by the app itself in every mode: plain `serve`, gunicorn.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "metriport_bulk.api.middleware.JsonErrorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires
]

# Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords an account is locked for
# AXES_COOLOFF_MINUTES (429), whatever the address; other accounts are unaffected. The API key auth does not
# go through authenticate() and is not throttled here.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
# Per account: what protects PHI is that no staff password can be guessed. Locking by address as well would lock
# every staff member out at once behind a proxy whose address all logins share (axes.W006 warns about the
# missing address; rotating addresses or user agents gains an attacker nothing against a per-account count).
AXES_LOCKOUT_PARAMETERS = ["username"]
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True

ROOT_URLCONF = "metriport_bulk.urls"
CSRF_FAILURE_VIEW = "metriport_bulk.api.errors.csrf_failure"
WSGI_APPLICATION = "metriport_bulk.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- Database -------------------------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{DATA_DIR / 'metriport-bulk.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
if env("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The embedded worker writes from threads: take the write lock up front and wait for it instead of
    # failing with "database is locked"; WAL lets readers (the API) run beside the writer. The backend
    # serves this process's writers in turn, so a web request's write never waits for a whole import
    # (metriport_bulk/sqlite/base.py).
    DATABASES["default"]["ENGINE"] = "metriport_bulk.sqlite"
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 60,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Storage --------------------------------------------------------------------------------------------
S3_BUCKET = env("S3_BUCKET")
S3_ENDPOINT_URL = env("S3_ENDPOINT_URL") or None
# The address clients (and webhook receivers) use for pre-signed URLs; defaults to S3_ENDPOINT_URL.
S3_PUBLIC_ENDPOINT_URL = env("S3_PUBLIC_ENDPOINT_URL") or S3_ENDPOINT_URL
S3_REGION = env("S3_REGION", "us-east-1")
S3_ACCESS_KEY_ID = env("S3_ACCESS_KEY_ID") or None
S3_SECRET_ACCESS_KEY = env("S3_SECRET_ACCESS_KEY") or None
S3_PREFIX = env("S3_PREFIX", "metriport-bulk").strip("/")
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(DATA_DIR / "files")))
STORAGE_BACKEND = "s3" if S3_BUCKET else "local"
STORAGES = {
    "default": (
        {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": S3_BUCKET,
                "endpoint_url": S3_ENDPOINT_URL,
                "region_name": S3_REGION,
                "access_key": S3_ACCESS_KEY_ID,
                "secret_key": S3_SECRET_ACCESS_KEY,
                "location": S3_PREFIX,
                "addressing_style": "path",
                "signature_version": "s3v4",
                "file_overwrite": True,
                "default_acl": None,
            },
        }
        if S3_BUCKET
        else {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": MEDIA_ROOT}}
    ),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
STATIC_URL = "/static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(DATA_DIR / "static")))
if not env("STATIC_ROOT"):
    # WhiteNoise warns on every start about a missing root; the embedded default's is made like DATA_DIR.
    with contextlib.suppress(OSError):
        STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Without a `collectstatic` run (a fresh clone, `make serve`), WhiteNoise serves the apps' own static files.
WHITENOISE_USE_FINDERS = True

# --- Bulk import ----------------------------------------------------------------------------------------
UPLOAD_URL_EXPIRY_SECONDS = env_int("UPLOAD_URL_EXPIRY_SECONDS", 600)
RESULT_URL_EXPIRY_SECONDS = env_int("RESULT_URL_EXPIRY_SECONDS", 600)
BULK_MAX_FILE_BYTES = env_int("BULK_MAX_FILE_BYTES", csvio.MAX_FILE_BYTES)
BULK_MAX_ROWS = env_int("BULK_MAX_ROWS", csvio.MAX_ROWS)
BULK_CHUNK_SIZE = env_int("BULK_CHUNK_SIZE", 2_000)
# A file of more rows is parsed in segments of this many (0: in one piece), by the worker that scanned it and
# BULK_PARSE_PARALLEL more.
BULK_PARSE_SEGMENT_ROWS = env_int("BULK_PARSE_SEGMENT_ROWS", 50_000)
BULK_PARSE_PARALLEL = env_int("BULK_PARSE_PARALLEL", 2)
# Fair scheduling across customers (SPEC §5): chunk and fresh Document Query messages run the pending work
# with the least progress instead of their own. false = first come, first served (for bench/fairness.py).
FAIR_SCHEDULING = env_bool("FAIR_SCHEDULING", True)
# A processing request or chunk untouched for this long is considered abandoned and resumed by the sweeper.
BULK_STALE_SECONDS = env_int("BULK_STALE_SECONDS", 120)
# A request waits at most this long (from the start of its processing) for its patients' Document Queries;
# queries still open then are reported `timed out` in its result file.
BULK_DOCUMENT_DEADLINE_SECONDS = env_int("BULK_DOCUMENT_DEADLINE_SECONDS", 24 * 3600)
# The admin reprocesses requests up to this many rows inside the web request; larger ones go to a worker.
ADMIN_INLINE_REPROCESS_ROWS = env_int("ADMIN_INLINE_REPROCESS_ROWS", 5_000)
SCHEDULER_INTERVAL_SECONDS = float(env("SCHEDULER_INTERVAL_SECONDS", "2"))

# --- Webhooks and Document Queries ----------------------------------------------------------------------
WEBHOOK_TIMEOUT_SECONDS = float(env("WEBHOOK_TIMEOUT_SECONDS", "5"))
WEBHOOK_ALLOW_PRIVATE_URLS = env_bool("WEBHOOK_ALLOW_PRIVATE_URLS", False)
WEBHOOK_RETRY_HOURS = float(env("WEBHOOK_RETRY_HOURS", "25"))
WEBHOOK_STANDARD_HEADERS = env_bool("WEBHOOK_STANDARD_HEADERS", True)
# Deliveries in flight at once per customer adapt to its receiver (more while it answers within
# WEBHOOK_SLOW_SECONDS, half as many when it is slower or fails), between these bounds: a slow or dead
# endpoint holds at most the upper bound of worker threads, and soon the lower one.
WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER = env_int("WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER", 4)
WEBHOOK_MIN_CONCURRENT_PER_CUSTOMER = env_int("WEBHOOK_MIN_CONCURRENT_PER_CUSTOMER", 1)
WEBHOOK_SLOW_SECONDS = float(env("WEBHOOK_SLOW_SECONDS", "1"))
# Patients per `medical.document-download` message of one bulk request (Metriport's `patients` array).
WEBHOOK_DOCUMENT_BATCH_SIZE = env_int("WEBHOOK_DOCUMENT_BATCH_SIZE", 100)
DOCQUERY_BACKEND = env("DOCQUERY_BACKEND", "sandbox")
DOCQUERY_GATEWAY_URL = env("DOCQUERY_GATEWAY_URL")
DOCQUERY_GATEWAY_TIMEOUT_SECONDS = float(env("DOCQUERY_GATEWAY_TIMEOUT_SECONDS", "10"))
DOCQUERY_RATE_LIMIT_PER_MINUTE = env_int("DOCQUERY_RATE_LIMIT_PER_MINUTE", 600)
DOCQUERY_SANDBOX_DELAY_SECONDS = float(env("DOCQUERY_SANDBOX_DELAY_SECONDS", "2"))
# Gateway retries (5xx, 429, timeouts): first delay, doubling per attempt (capped at 5 min), at most this many calls.
DOCQUERY_RETRY_BASE_SECONDS = float(env("DOCQUERY_RETRY_BASE_SECONDS", "5"))
# The sweeper resumes a query this long after it became due (lost message, dead worker): the fast path first.
DOCQUERY_SWEEP_GRACE_SECONDS = float(env("DOCQUERY_SWEEP_GRACE_SECONDS", "30"))
DOCQUERY_MAX_ATTEMPTS = env_int("DOCQUERY_MAX_ATTEMPTS", 8)

# /metrics: open when empty (scrape it from inside your network), else `Authorization: Bearer <token>`.
METRICS_TOKEN = env("METRICS_TOKEN")
# Each app reports its own figures at scrape time (metriport_bulk.ops.metrics knows none of them).
METRICS_SOURCES = [
    "bulkimport.metrics.state_figures",
    "docqueries.metrics.state_figures",
    "webhooks.metrics.state_figures",
]

# --- Dramatiq -------------------------------------------------------------------------------------------
BROKER_URL = env("BROKER_URL")
DRAMATIQ_NAMESPACE = env("DRAMATIQ_NAMESPACE", "metriport-bulk")
# The longest an idle worker waits before it looks for messages again, in ms. On Redis a consumer of an empty
# queue polls with a growing pause up to this; Dramatiq's default, 1000 ms, let each step of a request
# (parse, its segments, the first chunk, the finish) wait up to a second for an idle worker. RabbitMQ pushes
# messages: there it only bounds an idle worker's wake-ups. Dramatiq reads its own variable when a worker
# process starts: `rundramatiq` loads these settings first and its workers inherit the environment.
DRAMATIQ_WORKER_TIMEOUT = env_int("DRAMATIQ_WORKER_TIMEOUT", 100)
os.environ["dramatiq_worker_timeout"] = str(DRAMATIQ_WORKER_TIMEOUT)  # noqa: SIM112 - Dramatiq spells it so
# On Redis, the longest pause of an idle consumer of the queues no step of an import waits for: every delay
# queue (its messages are fetched ahead of their time and held until due), the ordinary lane of Document
# Queries (a big import's backlog; a first chunk's and a single patient's take the express lane) and the
# webhooks' queues (docqueries.tasks, webhooks.tasks). Every idle consumer polling every 100 ms took 12% of a
# core per worker process (metriport_bulk.lib.broker).
DRAMATIQ_BACKGROUND_TIMEOUT = env_int("DRAMATIQ_BACKGROUND_TIMEOUT", 1000)
DRAMATIQ_BACKGROUND_QUEUES = ("docqueries", "webhooks", "webhooks-status")
_dramatiq_middleware = [
    "dramatiq.middleware.AgeLimit",
    "dramatiq.middleware.TimeLimit",
    "dramatiq.middleware.ShutdownNotifications",
    "dramatiq.middleware.Callbacks",
    "dramatiq.middleware.Pipelines",
    "dramatiq.middleware.Retries",
    # Closes Django connections around each message so long-lived workers never reuse a dead one.
    "django_dramatiq.middleware.DbConnectionsMiddleware",
    # Each worker process builds its S3 client as it boots, not in the middle of its first request's parse.
    "metriport_bulk.runtime.WarmUp",
]
# Dramatiq's own Prometheus exporter in each worker process (messages, durations, retries by actor), on
# dramatiq_prom_host:dramatiq_prom_port (default 0.0.0.0:9191; set PROMETHEUS_MULTIPROC_DIR for several).
if env_bool("DRAMATIQ_PROMETHEUS", False):
    _dramatiq_middleware.append("dramatiq.middleware.Prometheus")
if BROKER_URL.startswith(("redis://", "rediss://")):
    DRAMATIQ_BROKER = {
        "BROKER": "metriport_bulk.lib.broker.RedisBroker",
        "OPTIONS": {"url": BROKER_URL, "namespace": DRAMATIQ_NAMESPACE},
        "MIDDLEWARE": _dramatiq_middleware,
    }
elif BROKER_URL.startswith(("amqp://", "amqps://")):
    DRAMATIQ_BROKER = {
        "BROKER": "dramatiq.brokers.rabbitmq.RabbitmqBroker",
        "OPTIONS": {"url": BROKER_URL},
        "MIDDLEWARE": _dramatiq_middleware,
    }
elif not BROKER_URL:
    # Embedded default: messages stay in this process and an in-process worker consumes them.
    DRAMATIQ_BROKER = {"BROKER": "dramatiq.brokers.stub.StubBroker", "MIDDLEWARE": _dramatiq_middleware}
else:
    raise RuntimeError("BROKER_URL must start with redis://, rediss://, amqp:// or amqps://")
EMBEDDED_WORKER = not BROKER_URL
EMBEDDED_WORKER_THREADS = env_int("EMBEDDED_WORKER_THREADS", 4)
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]

# --- DRF / OpenAPI --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["patients.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["patients.authentication.IsCustomer"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["metriport_bulk.api.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "metriport_bulk.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "metriport-bulk API",
    "DESCRIPTION": (
        "Bulk Patient Create, wire-compatible with the Metriport Medical API. The CSV file's columns, accepted "
        "values and error codes: [/docs/csv-format](/docs/csv-format)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "metriport_bulk.api.schema.add_error_responses",
    ],
}

# --- Auth / i18n / logging ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOG_LEVEL = env("LOG_LEVEL", "INFO")
# plain (default) or json: one JSON object per line (time, level, logger, message, exception), for collectors.
LOG_FORMAT = env("LOG_FORMAT", "plain").lower()
if LOG_FORMAT not in ("plain", "json"):
    raise RuntimeError("LOG_FORMAT must be plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "metriport_bulk.logging.JsonFormatter"},
    },
    "filters": {
        "redact": {"()": "metriport_bulk.logging.RedactExceptionMessages"},
        "tokens": {"()": "metriport_bulk.logging.RedactTokens"},  # no signed URL token in any line
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["redact", "tokens"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Request lines can carry query strings; our own loggers log ids only.
        "django.request": {"level": "ERROR"},
        # The development server's request lines (`serve`): through our handler (its tokens redacted, LOG_FORMAT).
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "pika": {"level": "WARNING"},
        "axes.apps": {"level": "WARNING"},  # its "AXES: BEGIN" line at every start of every command
    },
}

# --- Scheduler ------------------------------------------------------------------------------------------
# Periodic, idempotent jobs run by `manage.py run_scheduler` (and in-process in the embedded default).
SCHEDULER_JOBS = [
    "bulkimport.services.bulk_sweep",
    "webhooks.services.webhook_deliver_due",
    "docqueries.services.document_query_sweep",
    "idempotency.services.idempotency_keys_purge",
]

# --- Idempotency-Key ------------------------------------------------------------------------------------
# How long a key answers its first answer (docs/idempotency.md); after it, the key is free again.
IDEMPOTENCY_WINDOW_SECONDS = env_int("IDEMPOTENCY_WINDOW_SECONDS", 24 * 3600)
