"""Fixtures of the security tests: customers driving the real HTTP flow (live server, real worker and
scheduler, SeaweedFS S3 or local storage, PostgreSQL, Redis)."""

from __future__ import annotations

import pytest

from tests.helpers.api import Api


@pytest.fixture
def customer_api(live_server, tenant, pipeline, settings) -> Api:
    """The tenant's client; uploads go to SeaweedFS S3 through pre-signed URLs."""
    settings.PUBLIC_BASE_URL = live_server.url
    return Api(live_server.url, tenant.api_key)


@pytest.fixture
def other_api(live_server, other_tenant) -> Api:
    return Api(live_server.url, other_tenant.api_key)


@pytest.fixture
def local_api(live_server, tenant, pipeline, settings, tmp_path) -> Api:
    """The tenant's client on the embedded default's local storage: uploads go to our own signed URL."""
    settings.PUBLIC_BASE_URL = live_server.url
    settings.S3_BUCKET = ""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": tmp_path}},
    }
    return Api(live_server.url, tenant.api_key)
