"""`manage.py check --deploy` names the embedded default's unsafe-in-production settings, and is quiet about
them once production values are set."""

from __future__ import annotations

from django.core.checks import run_checks

OURS = {f"metriport_bulk.W00{n}" for n in range(1, 7)}


def our_warnings() -> set[str]:
    return {message.id for message in run_checks(include_deployment_checks=True) if message.id in OURS}


def test_embedded_defaults_are_warned_about(settings, monkeypatch):
    settings.SECRET_KEY_FROM_ENV = False
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", "django.db.backends.sqlite3")
    settings.BROKER_URL = ""
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    settings.S3_BUCKET = ""
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    assert our_warnings() == OURS


def test_production_settings_pass(settings, monkeypatch):
    settings.SECRET_KEY_FROM_ENV = True
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", "django.db.backends.postgresql")
    settings.BROKER_URL = "redis://127.0.0.1:6379/0"
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    settings.S3_BUCKET = "bucket"
    settings.PUBLIC_BASE_URL = "https://bulk.example.com"
    assert our_warnings() == set()
