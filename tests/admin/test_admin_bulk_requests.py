"""The bulk request and row pages: list, detail summary, rows by error code, a row side by side, downloads."""

from __future__ import annotations

import csv
import io

from django.urls import reverse

from bulkimport.models import BulkRequest, BulkRow, BulkRowError, RowStatus
from bulkimport.selectors import bulk_error_counts
from docqueries.models import DocumentQuery
from metriport_bulk.lib import storage
from patients.validation import GENDER_MESSAGE
from tests.helpers.bulk import csv_bytes, person, run_bulk, sample_bytes
from tests.helpers.factories import make_tenant


def change_url(bulk_request: BulkRequest) -> str:
    return reverse("admin:bulkimport_bulkrequest_change", args=[bulk_request.id])


def rows_url(**params) -> str:
    return reverse("admin:bulkimport_bulkrow_changelist") + "?" + "&".join(f"{k}={v}" for k, v in params.items())


def test_list_shows_status_customer_counts_and_progress(completed_request, support_client):
    response = support_client.get(reverse("admin:bulkimport_bulkrequest_changelist"))
    html = response.content.decode()
    assert response.status_code == 200
    assert str(completed_request.id)[:8] in html
    assert "Acme Health" in html and "Main Clinic" in html
    assert '<progress value="100"' in html
    assert f">{completed_request.failed}<" in html


def test_list_search_by_id_and_customer_name(completed_request, support_client):
    other = run_bulk(make_tenant("Zeta Care"), csv_bytes([person("Ann")]))
    url = reverse("admin:bulkimport_bulkrequest_changelist")
    by_id = support_client.get(url, {"q": str(other.id)})
    assert list(by_id.context["cl"].result_list) == [other]
    by_name = support_client.get(url, {"q": "zeta"})
    assert list(by_name.context["cl"].result_list) == [other]
    by_status = support_client.get(url, {"status__exact": "completed"})
    assert set(by_status.context["cl"].result_list) == {completed_request, other}


def test_detail_shows_progress_reason_error_counts_and_links(completed_request, support_client):
    response = support_client.get(change_url(completed_request))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="bulk-progress" value="100"' in html
    counts = bulk_error_counts(request_id=completed_request.id)
    assert counts, "the sample has invalid rows"
    assert [(item["code"], item["rows"]) for item in response.context["error_counts"]] == counts
    code = counts[0][0]
    assert rows_url(request=completed_request.id, error_code=code).split("?")[1] in html.replace("&amp;", "&")
    assert f"?request={completed_request.id}&status=failed" in html.replace("&amp;", "&")
    # Support is read-only: no action buttons; PHI viewers get the downloads.
    assert "bulk-reprocess-failed" not in html
    assert "bulk-download-input" in html and "bulk-download-result" in html and "bulk-download-invalid" in html
    # The medical data the request waited for.
    queries = DocumentQuery.objects.filter(bulk_request_id=completed_request.id).count()
    assert queries and f"{queries} completed, 0 failed, 0 pending of {queries} Document Queries" in html


def test_failed_request_shows_its_reason(tenant, support_client):
    failed = run_bulk(tenant, b"firstName,lastName\nAnn,Doe\n")
    assert failed.status == "failed"
    html = support_client.get(change_url(failed)).content.decode()
    assert 'id="bulk-reason"' in html and "Missing required column" in html


def test_rows_filtered_by_error_code_are_exactly_the_rows_with_that_code(completed_request, support_client):
    code, count = bulk_error_counts(request_id=completed_request.id)[0]
    response = support_client.get(rows_url(request=completed_request.id, error_code=code))
    shown = {row.number for row in response.context["cl"].result_list}
    expected = set(
        BulkRowError.objects.filter(request=completed_request, code=code).values_list("row_number", flat=True)
    )
    assert shown == expected and len(shown) == count
    assert response.context["cl"].result_count == count


def test_rows_filtered_by_status(completed_request, support_client):
    response = support_client.get(rows_url(request=completed_request.id, status="failed"))
    rows = list(response.context["cl"].result_list)
    assert len(rows) == completed_request.failed
    assert {row.status for row in rows} == {RowStatus.FAILED}


def test_row_search_by_number_within_a_request(completed_request, support_client):
    other = run_bulk(make_tenant("Zeta Care"), csv_bytes([person(f"P{i}") for i in range(10)]))
    response = support_client.get(rows_url(request=completed_request.id, q="7"))
    rows = list(response.context["cl"].result_list)
    assert [(row.request_id, row.number) for row in rows] == [(completed_request.id, 7)]
    # A request id and a number in the search box work without the filter.
    response = support_client.get(rows_url(q=f"{other.id}+7"))
    assert [(row.request_id, row.number) for row in response.context["cl"].result_list] == [(other.id, 7)]
    # A bare number without a request would scan every request's rows: refused with a hint.
    response = support_client.get(rows_url(q="7"))
    assert list(response.context["cl"].result_list) == []
    assert "Row numbers are per request" in response.content.decode()


def test_go_to_row_number_jumps_to_the_row(completed_request, support_client):
    row = BulkRow.objects.get(request=completed_request, number=42)
    url = reverse("admin:bulkimport_bulkrequest_row", args=[completed_request.id])
    response = support_client.get(url, {"number": "42"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:bulkimport_bulkrow_change", args=[row.id])
    missing = support_client.get(url, {"number": "99999"}, follow=True)
    assert "has no row 99999" in missing.content.decode()


def test_row_detail_shows_raw_and_normalized_side_by_side(completed_request, support_client):
    row = BulkRow.objects.filter(request=completed_request, status=RowStatus.SUCCEEDED).order_by("number").first()
    response = support_client.get(reverse("admin:bulkimport_bulkrow_change", args=[row.id]))
    assert response.status_code == 200
    cells = {cell.column: cell for cell in response.context["cells"]}
    assert cells["dob"].raw == row.raw[3] and cells["dob"].normalized == row.normalized["dob"]
    assert cells["firstName"].normalized == row.normalized["firstName"]
    assert cells["gender"].normalized == row.normalized["genderAtBirth"]
    assert cells["zip"].raw == row.raw[9] and cells["zip"].normalized == row.normalized["addresses"][0]["zip"]
    assert cells["state"].normalized == row.normalized["addresses"][0]["state"]
    html = response.content.decode()
    assert 'id="row-side-by-side"' in html and "Raw (as received)" in html


def test_failed_row_lists_its_errors_next_to_the_columns(tenant, support_client):
    bulk = run_bulk(tenant, csv_bytes([person("Ann"), person("Bob", dob="2999-01-01", gender="X")]))
    row = BulkRow.objects.get(request=bulk, number=2)
    response = support_client.get(reverse("admin:bulkimport_bulkrow_change", args=[row.id]))
    cells = {cell.column: cell for cell in response.context["cells"]}
    assert cells["dob"].raw == "2999-01-01" and cells["dob"].normalized is None
    assert cells["dob"].errors == ["Missing/invalid dob (date can't be in the future)"]
    assert cells["gender"].errors == [GENDER_MESSAGE]
    assert [code for code, _, _ in response.context["row_errors"]] == ["future_dob", "invalid_gender"]
    html = response.content.decode()
    assert "future_dob" in html and "invalid_gender" in html


def test_downloads_stream_the_stored_files(completed_request, support_client):
    url = reverse("admin:bulkimport_bulkrequest_download", args=[completed_request.id, "input"])
    response = support_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert b"".join(response.streaming_content) == sample_bytes(120, invalid_ratio=0.2, seed=11)
    result = support_client.get(reverse("admin:bulkimport_bulkrequest_download", args=[completed_request.id, "result"]))
    rows = list(csv.DictReader(io.StringIO(b"".join(result.streaming_content).decode())))
    assert len(rows) == 120
    with storage.open_for_read(completed_request.result_key) as stored:
        assert len(list(csv.DictReader(io.StringIO(stored.read().decode())))) == 120
    invalid = support_client.get(
        reverse("admin:bulkimport_bulkrequest_download", args=[completed_request.id, "invalid"])
    )
    failed = list(csv.DictReader(io.StringIO(b"".join(invalid.streaming_content).decode())))
    assert len(failed) == completed_request.failed and all(row["reason"] for row in failed)


def test_downloads_need_the_phi_permission_and_staff(completed_request, no_phi_client, client):
    url = reverse("admin:bulkimport_bulkrequest_download", args=[completed_request.id, "input"])
    assert no_phi_client.get(url).status_code == 403
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


def test_side_by_side_of_a_very_wide_row_is_capped():
    from bulkimport.admin_views import MAX_COLUMNS_SHOWN, side_by_side
    from tests.helpers.bulk import HEADER

    header = HEADER + [f"extra{i}" for i in range(5_000)]
    raw = person("Ann") + [""] * 5_000
    cells, general = side_by_side(header, raw, None, [("dob", "Missing/invalid dob")])
    assert len(cells) == MAX_COLUMNS_SHOWN
    assert cells[2].column == "dob" and cells[2].errors == ["Missing/invalid dob"]
    assert general == [f"Only the first {MAX_COLUMNS_SHOWN} of the row's {len(header)} columns are shown."]


def test_detail_shows_the_plan_and_the_absent_patients_download(tenant, support_client, no_phi_client):
    run_bulk(tenant, csv_bytes([person("Gus")]))  # on the facility, not on the next roster
    dry = run_bulk(tenant, csv_bytes([person("Ann"), person("ANN"), person("Bo", zip_code="02134")]), dry_run=True)
    response = support_client.get(change_url(dry))
    html = response.content.decode()
    plan = dict(response.context["plan_actions"])
    assert plan == {"wouldCreate": 2, "wouldUpdate": 0, "unchanged": 0, "duplicate": 1}
    assert response.context["absent_from_file"] == 1 and 'id="bulk-plan"' in html
    absent = support_client.get(reverse("admin:bulkimport_bulkrequest_download", args=[dry.id, "absent"]))
    rows = list(csv.DictReader(io.StringIO(b"".join(absent.streaming_content).decode())))
    assert [row["firstName"] for row in rows] == ["Gus"]
    # Counts carry no PHI; the file does, so staff without the PHI permission neither see a link nor get it.
    assert "bulk-download-absent" not in no_phi_client.get(change_url(dry)).content.decode()
    no_phi = no_phi_client.get(reverse("admin:bulkimport_bulkrequest_download", args=[dry.id, "absent"]))
    assert no_phi.status_code == 403
