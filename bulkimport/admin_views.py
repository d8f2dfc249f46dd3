"""Custom admin pages of the bulk import: start an import from a CSV (preview, then confirm), stream a request's
input or result file, and the side-by-side view of a row. They parse input and call the services and the CSV
engine; no pipeline logic lives here."""

from __future__ import annotations

import dataclasses
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import reverse

from bulkimport import services
from bulkimport.models import BulkRequest
from bulkimport.validation import CsvFileError, CsvImport, row_and_line
from metriport_bulk.admin_toolkit import can_view_phi
from metriport_bulk.lib import storage
from metriport_bulk.lib.ids import as_uuid
from patients.header import ColumnPlan, build_column_plan
from patients.models import Customer, Facility, PhiAccessLog
from patients.phi_log import phi_access_record

IMPORT_SALT = "metriport-bulk.admin-import"
IMPORT_TOKEN_MAX_AGE = 60 * 60
STAGING_PREFIX = "admin-imports"
PREVIEW_MAX_ERRORS = 20
DOWNLOAD_CHUNK_BYTES = 256 * 1024
# A file may have thousands of (unknown, kept) columns; the row page shows the first ones.
MAX_COLUMNS_SHOWN = 300


# --- The input header (labels of a row's raw cells) -----------------------------------------------------


def bulk_input_header(bulk_request: BulkRequest) -> list[str] | None:
    """The header row of a request's input file (stored when it was parsed), or None before that."""
    return bulk_request.header or None


# --- A row, raw and normalized side by side -------------------------------------------------------------


@dataclass
class RowCell:
    column: str  # the header cell as received
    field: str  # the column as Metriport names it in errors ("dob", "zip-2"), "" when unused
    raw: str | None  # None: the row has no such cell
    normalized: str | None  # None: not normalized (unused column, or the row is invalid)
    errors: list[str] = dataclasses.field(default_factory=list)  # `field` is a column here


def _column_fields(plan: ColumnPlan, width: int) -> dict[int, str]:
    """Column position -> the field name errors use for it."""
    names: dict[int, str] = {}
    singles = {
        plan.first_name: "firstName",
        plan.last_name: "lastName",
        plan.dob: "dob",
        plan.gender: "gender",
        plan.external_id: "externalId",
        plan.ssn: "ssn",
        plan.drivers_license: "driversLicense",
        plan.drivers_license_state: "driversLicense",
        plan.hie_opt_out: "hieOptOut",
    }
    names.update({column: name for column, name in singles.items() if column is not None})
    for group in plan.addresses:
        for column, name in (
            (group.address_line1, "addressLine1"),
            (group.address_line2, "addressLine2"),
            (group.city, "city"),
            (group.state, "state"),
            (group.zip, "zip"),
        ):
            if column is not None:
                names[column] = f"{name}{group.suffix}"
    names.update({column: name for name, column in (*plan.phones, *plan.emails)})
    return {column: name for column, name in names.items() if column < width}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _normalized_by_column(plan: ColumnPlan, raw: list[str], normalized: dict) -> dict[int, str]:
    """Column position -> its normalized value, read back from the stored normalized row."""
    values: dict[int, str] = {}

    def put(column: int | None, value: Any) -> None:
        if column is not None:
            values[column] = _text(value)

    def cell(column: int | None) -> str:
        return raw[column] if column is not None and column < len(raw) else ""

    put(plan.first_name, normalized.get("firstName"))
    put(plan.last_name, normalized.get("lastName"))
    put(plan.dob, normalized.get("dob"))
    put(plan.gender, normalized.get("genderAtBirth"))
    put(plan.external_id, normalized.get("externalId"))
    put(plan.ssn, normalized.get("ssn"))
    license_ = normalized.get("driversLicense") or {}
    put(plan.drivers_license, license_.get("value"))
    put(plan.drivers_license_state, license_.get("state"))
    put(plan.hie_opt_out, bool(normalized.get("hieOptOut")))
    # Empty address groups, phones and emails are skipped by validation: walk them in the same order.
    addresses = iter(normalized.get("addresses") or [])
    for group in plan.addresses:
        columns = (group.address_line1, group.address_line2, group.city, group.state, group.zip)
        if not "".join(cell(column) for column in columns).strip():
            continue
        address = next(addresses, None) or {}
        for column, key in zip(columns, ("addressLine1", "addressLine2", "city", "state", "zip"), strict=True):
            put(column, address.get(key))
    for contacts, key in ((plan.phones, "phones"), (plan.emails, "emails")):
        found = iter(normalized.get(key) or [])
        for _name, column in contacts:
            if cell(column).strip():
                put(column, next(found, None))
    return values


def side_by_side(
    header: list[str] | None, raw: list[str], normalized: dict | None, errors: list[tuple[str, str]]
) -> tuple[list[RowCell], list[str]]:
    """The row as a table (one line per column, at most MAX_COLUMNS_SHOWN) and the errors that name no single
    column."""
    full_width = max(len(header or []), len(raw))
    width = min(full_width, MAX_COLUMNS_SHOWN)
    try:
        plan = build_column_plan(header) if header else None
    except CsvFileError:
        plan = None
    fields = _column_fields(plan, width) if plan else {}
    values = _normalized_by_column(plan, raw, normalized) if plan and normalized else {}
    cells = []
    for position in range(width):
        if header and position < len(header):
            column = header[position]
        else:
            column = f"(column {position + 1}, not in the header)"
        cells.append(
            RowCell(
                column=column,
                field=fields.get(position, ""),
                raw=raw[position] if position < len(raw) else None,
                normalized=values.get(position),
            )
        )
    by_field: dict[str, RowCell] = {}
    for row_cell in cells:
        if row_cell.field:
            by_field.setdefault(row_cell.field, row_cell)
    general = []
    if full_width > width:
        general.append(f"Only the first {width} of the row's {full_width} columns are shown.")
    for error_field, message in errors:
        target = by_field.get(error_field)
        if target is not None:
            target.errors.append(message)
        else:
            general.append(message)
    return cells, general


# --- File downloads -------------------------------------------------------------------------------------


def _file_chunks(key: str):
    with storage.open_for_read(key) as stream:
        while chunk := stream.read(DOWNLOAD_CHUNK_BYTES):
            yield chunk


def download_view(model_admin, request: HttpRequest, object_id: str, kind: str) -> HttpResponseBase:
    """Streams a request's input, result or failed-rows CSV from storage. All hold PHI: staff with the PHI
    permission only."""
    bulk_request = model_admin.get_object(request, object_id)
    if bulk_request is None or kind not in ("input", "result", "invalid", "absent"):
        raise Http404("No such file.")
    if not model_admin.has_view_permission(request, bulk_request) or not can_view_phi(request):
        raise PermissionDenied
    key = {
        "input": bulk_request.input_key,
        "result": bulk_request.result_key,
        "absent": bulk_request.absent_key,
    }.get(kind, bulk_request.invalid_key)
    size = storage.object_size(key) if key else None
    if size is None:
        messages.error(request, f"The {kind} file of this request is not available.")
        return HttpResponseRedirect(reverse("admin:bulkimport_bulkrequest_change", args=[bulk_request.pk]))
    phi_access_record(
        request=request,
        action=PhiAccessLog.Action.DOWNLOAD,
        model=f"bulkimport.bulkrequest:{kind}",
        object_ids=[bulk_request.id],
    )
    response = StreamingHttpResponse(_file_chunks(key), content_type="text/csv")
    response["Content-Length"] = str(size)
    response["Content-Disposition"] = f'attachment; filename="bulk-{bulk_request.id}-{kind}.csv"'
    response["Cache-Control"] = "no-store"
    return response


# --- Start an import: upload, preview, confirm -----------------------------------------------------------


class FacilityChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Facility) -> str:
        return f"{obj.customer.name} — {obj.name} (NPI {obj.npi})"


class BulkImportForm(forms.Form):
    facility = FacilityChoiceField(queryset=Facility.objects.none(), help_text="Customer — facility")
    dry_run = forms.BooleanField(
        required=False, label="Dry run", help_text="Validate only: no patient, link or Document Query is created."
    )
    file = forms.FileField(label="Patients CSV")

    def __init__(self, *args, customer: Customer | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        facilities = Facility.objects.filter(active=True).select_related("customer").order_by("customer__name", "name")
        if customer is not None:
            facilities = facilities.filter(customer=customer)
        cast(forms.ModelChoiceField, self.fields["facility"]).queryset = facilities


@dataclass
class PreviewError:
    number: int
    column: str
    message: str

    @property
    def label(self) -> str:
        return row_and_line(self.number)


@dataclass
class ImportPreview:
    filename: str
    size: int
    file_error: str | None = None
    header: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows: int = 0
    invalid_rows: int = 0
    errors: list[PreviewError] = field(default_factory=list)
    error_counts: list[tuple[str, int]] = field(default_factory=list)

    @property
    def valid_rows(self) -> int:
        return self.rows - self.invalid_rows


def preview_csv(stream: BinaryIO, *, filename: str, size: int) -> ImportPreview:
    """Runs the CSV engine over the whole file (streaming): file-level error, or the row count and the first
    row errors. Nothing is stored."""
    preview = ImportPreview(filename=filename, size=size)
    counts: Counter[str] = Counter()
    try:
        csv_import = CsvImport(stream, max_rows=settings.BULK_MAX_ROWS, max_bytes=settings.BULK_MAX_FILE_BYTES)
        preview.header = csv_import.header
        preview.warnings = list(csv_import.plan.warnings)
        for row in csv_import.rows():
            preview.rows += 1
            if row.errors:
                preview.invalid_rows += 1
                for error in row.errors:
                    counts[str(error.code)] += 1
                    if len(preview.errors) < PREVIEW_MAX_ERRORS:
                        preview.errors.append(PreviewError(row.number, error.field, error.message))
    except CsvFileError as exc:
        preview.file_error = exc.message
    preview.error_counts = counts.most_common()
    return preview


def _render_import(model_admin, request: HttpRequest, context: dict) -> TemplateResponse:
    opts = model_admin.model._meta
    return TemplateResponse(
        request,
        "admin/bulkimport/bulkrequest/import.html",
        {
            **model_admin.admin_site.each_context(request),
            "opts": opts,
            "title": "Start a bulk import",
            "max_rows": settings.BULK_MAX_ROWS,
            "max_megabytes": settings.BULK_MAX_FILE_BYTES // (1024 * 1024),
            **context,
        },
    )


def import_view(model_admin, request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("bulkimport.add_bulkrequest"):
        raise PermissionDenied
    customer = None
    customer_id = as_uuid(request.GET.get("customer", ""))
    if customer_id is not None:
        customer = Customer.objects.filter(id=customer_id).first()
    if request.method == "POST" and "_confirm" in request.POST:
        return _confirm(request)
    if request.method == "POST" and "_cancel" in request.POST:
        _discard(request)
        messages.info(request, "Import cancelled: nothing was created.")
        return HttpResponseRedirect(request.get_full_path())
    if request.method != "POST":
        return _render_import(model_admin, request, {"form": BulkImportForm(customer=customer), "customer": customer})

    form = BulkImportForm(request.POST, request.FILES, customer=customer)
    if not form.is_valid():
        return _render_import(model_admin, request, {"form": form, "customer": customer})
    upload = form.cleaned_data["file"]
    with tempfile.TemporaryFile() as spooled:
        for chunk in upload.chunks():
            spooled.write(chunk)
        size = spooled.tell()
        spooled.seek(0)
        preview = preview_csv(spooled, filename=upload.name, size=size)
        token = None
        if preview.file_error is None:
            # Staged in storage, not on this machine's disk: the confirmation may reach another web process.
            staging_key = f"{STAGING_PREFIX}/{uuid.uuid4().hex}.csv"
            spooled.seek(0)
            storage.save(staging_key, spooled)
            facility = form.cleaned_data["facility"]
            token = signing.dumps(
                {
                    "k": staging_key,
                    "f": str(facility.id),
                    "d": bool(form.cleaned_data["dry_run"]),
                    "s": size,
                    "u": request.user.pk,
                },
                salt=IMPORT_SALT,
            )
    return _render_import(
        model_admin,
        request,
        {
            "form": form,
            "customer": customer,
            "preview": preview,
            "token": token,
            "facility": form.cleaned_data["facility"],
            "dry_run": form.cleaned_data["dry_run"],
        },
    )


def _read_token(request: HttpRequest) -> dict | None:
    try:
        data = signing.loads(request.POST.get("token", ""), salt=IMPORT_SALT, max_age=IMPORT_TOKEN_MAX_AGE)
    except signing.BadSignature:
        return None
    return data if data.get("u") == request.user.pk else None


def _discard(request: HttpRequest) -> None:
    data = _read_token(request)
    if data is not None:
        storage.delete(data["k"])


def _confirm(request: HttpRequest) -> HttpResponse:
    back = HttpResponseRedirect(request.get_full_path())
    data = _read_token(request)
    if data is None:
        messages.error(request, "This preview has expired: upload the file again.")
        return back
    size = storage.object_size(data["k"])
    facility = Facility.objects.select_related("customer").filter(id=data["f"]).first()
    if size is None or facility is None:
        messages.error(request, "This preview was already imported or cancelled: upload the file again.")
        return back
    try:
        bulk_request = services.bulk_request_create(
            customer=facility.customer, facility_id=str(facility.id), dry_run=data["d"]
        )
    except services.BulkRequestError as exc:
        messages.error(request, str(exc))
        return back
    with storage.open_for_read(data["k"]) as stream:
        submitted = services.bulk_request_submit_file(request=bulk_request, stream=stream, size=size)
    storage.delete(data["k"])
    if submitted:
        messages.success(request, f"Bulk request {bulk_request.id} created; its file is being processed.")
    else:
        messages.warning(request, f"Bulk request {bulk_request.id} was created but its file was refused.")
    return HttpResponseRedirect(reverse("admin:bulkimport_bulkrequest_change", args=[bulk_request.pk]))
