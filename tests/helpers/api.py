"""API clients: DRF's test client with a customer's key, and the customer's real HTTP view of a live server."""

from __future__ import annotations

import requests
from rest_framework.test import APIClient

from tests.helpers.bulk import wait_final


def client_for(api_key: str | None) -> APIClient:
    client = APIClient()
    if api_key:
        client.credentials(HTTP_X_API_KEY=api_key)
    return client


class Api:
    """The customer's view: real HTTP against the live server."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["x-api-key"] = api_key

    def create(self, **params) -> requests.Response:
        return self.session.post(f"{self.base_url}/medical/v1/patient/bulk", params=params, timeout=30)

    def get(self, request_id) -> requests.Response:
        return self.session.get(f"{self.base_url}/medical/v1/patient/bulk/{request_id}", timeout=30)

    def run(self, body: bytes, timeout: float = 90.0, **params) -> dict:
        created = self.create(**params)
        assert created.status_code == 200, created.text
        upload = requests.put(created.json()["uploadUrl"], data=body, timeout=60)
        assert upload.status_code == 200, upload.text
        wait_final(created.json()["requestId"], timeout=timeout)
        return self.get(created.json()["requestId"]).json()
