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


def bulk_through_api(api: APIClient, body: bytes, *, dry_run: bool = False, query: str = "") -> dict:
    """POST a bulk request, upload `body` (the service's own upload step), run the pipeline inline and answer
    GET /medical/v1/patient/bulk/{id} (whatever the request's end: completed or failed)."""
    import io

    from bulkimport import services
    from bulkimport.models import BulkRequest

    created = api.post(f"/medical/v1/patient/bulk?dryRun={'true' if dry_run else 'false'}{query}")
    assert created.status_code == 200, created.json()
    request = BulkRequest.objects.get(id=created.json()["requestId"])
    services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
    return bulk_run_and_get(api, request.id)


def bulk_run_and_get(api: APIClient, request_id: object) -> dict:
    """Runs the request's remaining pipeline steps inline and answers its GET."""
    from tests.helpers.bulk import run_inline

    run_inline(request_id)
    answer = api.get(f"/medical/v1/patient/bulk/{request_id}")
    assert answer.status_code == 200, answer.json()
    return answer.json()


def patient_through_api(api: APIClient, first: str, **overrides: object) -> dict:
    """POST /medical/v1/patient of a person as tests.helpers.bulk.person writes them (zip 10001)."""
    data = {
        "firstName": first,
        "lastName": "Doe",
        "dob": "1980-01-02",
        "genderAtBirth": "F",
        "address": [{"addressLine1": "1 Main St", "city": "New York", "state": "NY", "zip": "10001"}],
        **overrides,
    }
    answer = api.post("/medical/v1/patient", data, format="json")
    assert answer.status_code in (200, 201), answer.json()
    return answer.json()
