"""Static files are served by the app itself (WhiteNoise) with DEBUG off, without a collectstatic run: the
admin's stylesheets and the Swagger UI of /docs load under `manage.py serve` and gunicorn alike."""

from __future__ import annotations

import re

import pytest
from django.test import Client


@pytest.mark.parametrize(
    "path", ["/static/admin/css/base.css", "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"]
)
def test_static_assets_are_served_with_debug_off(settings, path):
    settings.DEBUG = False
    response = Client().get(path)
    assert response.status_code == 200
    assert len(b"".join(response.streaming_content)) > 1000
    response.close()  # a file response holds its file open until closed


@pytest.mark.django_db
def test_every_asset_the_docs_page_names_is_served(settings):
    settings.DEBUG = False
    client = Client()
    page = client.get("/docs").content.decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert assets, "the docs page names its assets"
    for asset in assets:
        response = client.get(asset)
        response.close()  # a file response holds its file open until closed
        assert response.status_code == 200, asset


def test_an_unknown_static_path_is_a_404(settings):
    settings.DEBUG = False
    assert Client().get("/static/admin/css/nope.css").status_code == 404
