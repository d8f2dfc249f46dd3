"""The upload URL says what to do: a POST is answered 405 (JSON envelope, Allow: PUT) telling to PUT the file,
and a used URL is answered 409 telling to create a new bulk request."""

import pytest
from django.core import signing
from django.urls import reverse

from bulkimport import services
from bulkimport.models import BulkRequest, BulkStatus

pytestmark = pytest.mark.django_db


def _local_upload_path(request_id) -> str:
    return reverse("bulk-upload", args=[signing.dumps({"r": str(request_id)}, salt=services.UPLOAD_SALT)])


@pytest.mark.parametrize("method", ["post", "patch"])
def test_a_post_to_the_upload_url_says_to_use_put(api, client, method):
    created = api.post("/medical/v1/patient/bulk").json()
    response = getattr(client, method)(_local_upload_path(created["requestId"]), data=b"a,b\n", content_type="text/csv")
    assert response.status_code == 405
    assert "PUT" in response["Allow"]
    body = response.json()
    assert body["status"] == 405 and body["name"] == "MethodNotAllowedError"
    assert body["detail"].startswith(f"Upload the file with PUT, not {method.upper()}")
    assert BulkRequest.objects.get(id=created["requestId"]).status == BulkStatus.WAITING


def test_a_used_upload_url_says_to_create_a_new_request(api, client):
    created = api.post("/medical/v1/patient/bulk").json()
    BulkRequest.objects.filter(id=created["requestId"]).update(status=BulkStatus.PROCESSING)
    response = client.put(_local_upload_path(created["requestId"]), data=b"firstName\nJane\n", content_type="text/csv")
    assert response.status_code == 409
    assert "create a new bulk request (POST /medical/v1/patient/bulk)" in response.json()["detail"]
