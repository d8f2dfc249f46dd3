"""`manage.py check --deploy` warnings for settings that are fine for the embedded default and unsafe in
production (SPEC §12). Django's own deploy checks (DEBUG, HTTPS, cookies, HSTS) run beside these. The bulk
limits are checked on every start (a process with an unsupported limit refuses to run)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

# The largest limits the pipeline is built and measured for (issue 24: time linear and memory flat up to
# 1,000,000 rows, docs/benchmarks.md); the defaults stay Metriport's 100,000 rows / 50 MB.
SUPPORTED_MAX_ROWS = 1_000_000
SUPPORTED_MAX_FILE_BYTES = 500 * 1024 * 1024


@register()
def bulk_limits(app_configs, **kwargs) -> list[Error]:
    errors = []
    for name, ceiling, what in (
        ("BULK_MAX_ROWS", SUPPORTED_MAX_ROWS, f"{SUPPORTED_MAX_ROWS:,} rows"),
        ("BULK_MAX_FILE_BYTES", SUPPORTED_MAX_FILE_BYTES, f"{SUPPORTED_MAX_FILE_BYTES:,} bytes (500 MB)"),
    ):
        value = getattr(settings, name)
        if not 1 <= value <= ceiling:
            errors.append(
                Error(
                    f"{name}={value:,} is outside the supported range 1 to {what}.",
                    hint=f"Set {name} to at most {ceiling}: larger files are not measured to finish in bounded "
                    "time and memory; split them into several bulk requests.",
                    id="metriport_bulk.E001" if name == "BULK_MAX_ROWS" else "metriport_bulk.E002",
                )
            )
    return errors


@register(Tags.security, deploy=True)
def production_settings(app_configs, **kwargs) -> list[Warning]:
    warnings = []
    if not settings.SECRET_KEY_FROM_ENV:
        warnings.append(
            Warning(
                "SECRET_KEY is the random key made for this install under DATA_DIR.",
                hint="Set SECRET_KEY in the environment: every web process must share it (it signs upload and "
                "download URLs), and it must survive a new machine.",
                id="metriport_bulk.W001",
            )
        )
    if "sqlite" in settings.DATABASES["default"]["ENGINE"]:
        warnings.append(
            Warning(
                "The database is SQLite (the embedded default).",
                hint="Set DATABASE_URL=postgres://...: SQLite serializes every writer and cannot be shared by "
                "several hosts.",
                id="metriport_bulk.W002",
            )
        )
    if not settings.BROKER_URL:
        warnings.append(
            Warning(
                "BROKER_URL is empty: messages live in the web process and its in-process worker.",
                hint="Set BROKER_URL=redis://... or amqp://... and run `manage.py rundramatiq` workers; queued "
                "work is otherwise lost with the process (the sweeper redoes it, late).",
                id="metriport_bulk.W003",
            )
        )
    if settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        warnings.append(
            Warning(
                "WEBHOOK_ALLOW_PRIVATE_URLS is true: customers may point webhooks at private and loopback addresses.",
                hint="Leave it false in production: it lets a webhook URL reach services inside your network "
                "(server-side request forgery).",
                id="metriport_bulk.W004",
            )
        )
    if not settings.S3_BUCKET:
        warnings.append(
            Warning(
                "Files (uploads, results: PHI) are stored on the local disk under MEDIA_ROOT.",
                hint="Set S3_BUCKET (and S3_* credentials) so every web and worker process reads the same files.",
                id="metriport_bulk.W005",
            )
        )
    if not settings.PUBLIC_BASE_URL.startswith("https://"):
        warnings.append(
            Warning(
                f"PUBLIC_BASE_URL is {settings.PUBLIC_BASE_URL!r}, not https.",
                hint="Upload and download URLs carry PHI: serve them over HTTPS and set PUBLIC_BASE_URL to that "
                "address.",
                id="metriport_bulk.W006",
            )
        )
    return warnings
