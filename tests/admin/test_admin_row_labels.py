"""Rows are labelled the way a spreadsheet shows them (row 27 is on line 28: the header is line 1): in the rows
and row-errors lists, on the row page, in the import preview; and "line 28" in the go-to box opens row 27."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from bulkimport.models import BulkRow, BulkRowError, RowStatus
from tests.helpers.bulk import HEADER, csv_bytes, person


def test_lists_and_row_page_show_the_spreadsheet_line(completed_request, support_client):
    rows_url = reverse("admin:bulkimport_bulkrow_changelist") + f"?request={completed_request.id}&q=27"
    page = support_client.get(rows_url).content.decode()
    assert "Row (spreadsheet line)" in page and "27 (line 28)" in page
    failed = BulkRow.objects.filter(request=completed_request, status=RowStatus.FAILED).order_by("number").first()
    errors_url = reverse("admin:bulkimport_bulkrowerror_changelist") + f"?request={completed_request.id}"
    assert f"{failed.number} (line {failed.number + 1})" in support_client.get(errors_url).content.decode()
    row_page = support_client.get(reverse("admin:bulkimport_bulkrow_change", args=[failed.id])).content.decode()
    assert f"Row {failed.number} (spreadsheet line {failed.number + 1})" in row_page
    assert str(BulkRowError.objects.filter(request=completed_request).order_by("row_number").first()).startswith(
        f"Row {failed.number} (spreadsheet line {failed.number + 1}): "
    )


def test_go_to_line_opens_the_row_a_spreadsheet_shows_on_it(completed_request, support_client):
    row = BulkRow.objects.get(request=completed_request, number=27)
    url = reverse("admin:bulkimport_bulkrequest_row", args=[completed_request.id])
    for text in ("line 28", "Line28", "27"):
        response = support_client.get(url, {"number": text})
        assert response.status_code == 302, text
        assert response["Location"] == reverse("admin:bulkimport_bulkrow_change", args=[row.id])
    assert "has no row line 9999" in support_client.get(url, {"number": "line 9999"}, follow=True).content.decode()


def test_the_import_preview_shows_header_warnings_and_spreadsheet_lines(tenant, operator_client):
    rows = [person("Ann"), person("Bad", dob="2999-01-01")]
    body = csv_bytes([[*row, ""] for row in rows], [*HEADER, "Phone Number"])
    response = operator_client.post(
        reverse("admin:bulkimport_bulkrequest_import"),
        {"facility": str(tenant.facility.id), "file": SimpleUploadedFile("p.csv", body, "text/csv"), "_preview": "1"},
    )
    html = response.content.decode()
    assert 'id="import-warnings"' in html
    assert f"Column {len(HEADER) + 1} (&quot;Phone Number&quot;) is not read: did you mean phone?" in html
    assert "<td>2 (line 3)</td><td>dob</td>" in html
