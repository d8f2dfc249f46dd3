"""The admin import page: a preview runs the CSV engine over the upload; nothing exists until confirmed."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from bulkimport.admin_views import STAGING_PREFIX
from bulkimport.models import BulkRequest, BulkStatus
from metriport_bulk.lib import storage
from tests.helpers.bulk import csv_bytes, person

URL = "admin:bulkimport_bulkrequest_import"


def upload(client, tenant, body: bytes, *, dry_run: bool = False, name: str = "patients.csv"):
    data = {
        "facility": str(tenant.facility.id),
        "file": SimpleUploadedFile(name, body, "text/csv"),
        "_preview": "Preview",
    }
    if dry_run:
        data["dry_run"] = "on"
    return client.post(reverse(URL), data)


def test_form_lists_active_facilities(tenant, operator_client):
    response = operator_client.get(reverse(URL), {"customer": str(tenant.customer.id)})
    assert response.status_code == 200
    assert "Acme Health — Main Clinic" in response.content.decode()


def test_file_error_is_shown_and_nothing_is_created(tenant, operator_client):
    response = upload(operator_client, tenant, b"firstName,lastName\nAnn,Doe\n")
    html = response.content.decode()
    assert 'id="import-file-error"' in html and "Missing required column(s): dob, gender" in html
    assert 'id="import-confirm"' not in html
    assert response.context["token"] is None
    assert not BulkRequest.objects.exists()


def test_encoding_error_is_shown(tenant, operator_client):
    body = "firstName,lastName,dob,gender,addressLine1,city,state,zip\nRenée,Doe,1980-01-02,F,1 Rue,Paris,NY,10001\n"
    response = upload(operator_client, tenant, body.encode("utf-16"))
    assert "UTF-16" in response.context["preview"].file_error


def test_preview_shows_row_count_and_the_first_twenty_row_errors(tenant, operator_client):
    rows = [person(f"P{i}") for i in range(30)] + [person(f"Bad{i}", dob="2999-01-01") for i in range(25)]
    response = upload(operator_client, tenant, csv_bytes(rows))
    preview = response.context["preview"]
    assert preview.file_error is None
    assert (preview.rows, preview.valid_rows, preview.invalid_rows) == (55, 30, 25)
    assert len(preview.errors) == 20
    assert [(e.number, e.column) for e in preview.errors[:2]] == [(31, "dob"), (32, "dob")]
    assert preview.error_counts == [("future_dob", 25)]
    html = response.content.decode()
    assert 'id="import-row-errors"' in html and "<td>31 (line 32)</td><td>dob</td>" in html
    assert 'id="import-confirm"' in html
    assert not BulkRequest.objects.exists()  # nothing until the confirmation


def test_confirm_creates_the_request_and_redirects_to_it(tenant, operator_client):
    body = csv_bytes([person("Ann"), person("Bob", gender="X")])
    preview = upload(operator_client, tenant, body, dry_run=True)
    token = preview.context["token"]
    response = operator_client.post(reverse(URL), {"token": token, "_confirm": "Confirm import"})
    bulk_request = BulkRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:bulkimport_bulkrequest_change", args=[bulk_request.id])
    assert bulk_request.status == BulkStatus.PROCESSING and bulk_request.dry_run
    assert bulk_request.facility == tenant.facility and bulk_request.input_size == len(body)
    with storage.open_for_read(bulk_request.input_key) as stored:
        assert stored.read() == body
    # The staged upload is gone: confirming again creates nothing.
    again = operator_client.post(reverse(URL), {"token": token, "_confirm": "Confirm import"}, follow=True)
    assert "already imported or cancelled" in again.content.decode()
    assert BulkRequest.objects.count() == 1


def test_cancel_discards_the_staged_file(tenant, operator_client):
    preview = upload(operator_client, tenant, csv_bytes([person("Ann")]))
    token = preview.context["token"]
    from django.core import signing

    staged = signing.loads(token, salt="metriport-bulk.admin-import")["k"]
    assert staged.startswith(STAGING_PREFIX) and storage.object_size(staged) is not None
    response = operator_client.post(reverse(URL), {"token": token, "_cancel": "Cancel"}, follow=True)
    assert "nothing was created" in response.content.decode()
    assert storage.object_size(staged) is None
    assert not BulkRequest.objects.exists()


def test_tampered_or_foreign_token_is_refused(tenant, operator_client):
    from django.contrib.auth.models import User
    from django.test import Client

    token = upload(operator_client, tenant, csv_bytes([person("Ann")])).context["token"]
    tampered = operator_client.post(reverse(URL), {"token": token[:-2] + "xx", "_confirm": "1"}, follow=True)
    assert "This preview has expired" in tampered.content.decode()
    other = Client()
    other.force_login(User.objects.create_superuser("other-operator", password="x" * 12))
    foreign = other.post(reverse(URL), {"token": token, "_confirm": "1"}, follow=True)
    assert "This preview has expired" in foreign.content.decode()
    assert not BulkRequest.objects.exists()
