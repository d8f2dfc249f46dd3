"""Admin for bulk requests and their rows: what support uses to answer "why did row 73,412 fail?".

Every list over rows is scoped to one bulk request through indexed lookups: (request, number) for the row
search, (request, status, number) for the status filter, and BulkRowError's (request, code, row_number) for
the error-code filter. Actions call the services and report their outcome as a message.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from bulkimport import admin_views, services
from bulkimport.models import BulkChunk, BulkRequest, BulkRow, BulkRowError, BulkStatus, RowStatus
from bulkimport.selectors import bulk_error_counts
from bulkimport.validation import row_and_line
from metriport_bulk.admin_toolkit import (
    LargeTableAdminMixin,
    PhiGuardMixin,
    ReadOnlyAdminMixin,
    SearchByIdMixin,
    admin_link,
    can_view_phi,
    hide_save_buttons,
)
from metriport_bulk.lib.ids import as_uuid
from patients.models import Facility, Patient
from patients.phi_log import PhiAccessLogMixin

# The request's latest history lines on its page (the History page has them all).
HISTORY_LINES = 5


def _rows_url(request_id, **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in {"request": request_id, **params}.items())
    return f"{reverse('admin:bulkimport_bulkrow_changelist')}?{query}"


def _progress_percent(obj: BulkRequest) -> int:
    if obj.status == BulkStatus.COMPLETED:
        return 100
    if not obj.total:
        return 0
    return min(100, int(obj.processed * 100 / obj.total))


def _duration(obj: BulkRequest) -> str:
    if obj.started_at is None:
        return "-"
    seconds = int(((obj.finished_at or timezone.now()) - obj.started_at).total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {seconds:02d}s" if hours else f"{minutes}m {seconds:02d}s"


# --- Bulk requests --------------------------------------------------------------------------------------


@admin.register(BulkRequest)
class BulkRequestAdmin(PhiGuardMixin, SearchByIdMixin, LargeTableAdminMixin, admin.ModelAdmin):
    # Few, narrow columns, the progress first: at a 1,280 px window it stays whole beside both sidebars (the
    # list scrolls sideways for the last columns if it must).
    list_display = ("short_id", "status_and_kind", "progress", "rows", "customer", "facility", "duration", "created_at")
    list_filter = ("status", "dry_run", "created_at")
    list_select_related = ("customer", "facility")
    search_fields = ("customer__name", "facility__name")
    search_help_text = "Bulk request id, or customer or facility name"
    ordering = ("-created_at",)
    actions = ("reprocess_all", "reprocess_failed", "resend_webhook", "expire")
    fieldsets = (
        (None, {"fields": ("id", "customer", "facility", "status", "phase", "dry_run", "reason", "header_warnings")}),
        ("Counts", {"fields": ("total", "processed", "successful", "failed", "parse_attempts", "medical_data")}),
        (
            "Times",
            {"fields": ("created_at", "started_at", "finished_at", "heartbeat_at", "finish_sent_at", "duration")},
        ),
    )  # the files: one "Files" section in the summary above the form (downloads, sizes, storage keys)

    @admin.display(description="medical data")
    def medical_data(self, obj) -> str:
        """The Document Queries the request waits for before it completes (SPEC §2)."""
        from docqueries.services import bulk_query_counts

        counts = bulk_query_counts(bulk_request_id=obj.id)
        if not counts["total"]:
            return "-"
        return (
            f"{counts['completed']} completed, {counts['failed']} failed, {counts['pending']} pending "
            f"of {counts['total']} Document Queries"
        )

    @admin.display(description="warnings")
    def header_warnings(self, obj) -> str:
        """Header warnings (columns that look indexed but are out of range); they name canonical fields and
        column numbers only, never cell values."""
        return "; ".join(obj.warnings or []) or "-"

    # Everything is written by the pipeline; the page is for reading and for the actions.
    def get_readonly_fields(self, request, obj=None):
        return [name for _, options in self.fieldsets for name in options["fields"]]

    def has_add_permission(self, request) -> bool:
        return False  # requests start from the import page (or the API), never from a bare form

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Request", ordering="id")
    def short_id(self, obj: BulkRequest) -> str:
        return str(obj.id)[:8] + "…"

    @admin.display(description="Status", ordering="status")
    def status_and_kind(self, obj: BulkRequest) -> str:
        return f"{obj.get_status_display()}, dry run" if obj.dry_run else obj.get_status_display()

    @admin.display(description="Progress")
    def progress(self, obj: BulkRequest) -> str:
        percent = _progress_percent(obj)
        return format_html(
            '<span class="bulk-list-progress"><progress value="{}" max="100" title="{}%"></progress> {}%</span>',
            percent,
            percent,
            percent,
        )

    @admin.display(description="Rows (ok / failed)", ordering="total")
    def rows(self, obj: BulkRequest) -> str:
        return format_html(
            '<span class="bulk-list-rows">{} (<span>{}</span> / <span>{}</span>)</span>',
            f"{obj.total:,}",
            f"{obj.successful:,}",
            f"{obj.failed:,}",
        )

    @admin.display(description="Duration")
    def duration(self, obj: BulkRequest) -> str:
        return _duration(obj)

    # --- detail page ---

    def get_object(self, request, object_id, from_field=None):
        if as_uuid(object_id) is None:
            return None  # a malformed id is "not found", not a 500 from the UUID field
        return super().get_object(request, object_id, from_field)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("customer", "facility")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self._summary(request, obj))
        hide_save_buttons(context)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _summary(self, request, obj: BulkRequest) -> dict:
        errors = [
            {"code": code, "rows": rows, "url": _rows_url(obj.id, error_code=code)}
            for code, rows in bulk_error_counts(request_id=obj.id)
        ]
        chunks = dict(
            BulkChunk.objects.filter(request_id=obj.id).values_list("status").annotate(n=Count("id")).order_by()
        )
        can_act = self.has_change_permission(request, obj)
        return {
            "progress_percent": _progress_percent(obj),
            "input_size": f"{obj.input_size:,}" if obj.input_size is not None else "",
            "duration": _duration(obj),
            "error_counts": errors,
            "plan_actions": list((obj.plan or {}).get("actions", {}).items()),
            "absent_from_file": (obj.plan or {}).get("absentFromFile"),
            "plan_document_queries": (obj.plan or {}).get("documentQueries"),
            "plan_facilities": [
                (facility_id, list(counts.items()))
                for facility_id, counts in (obj.plan or {}).get("facilities", {}).items()
            ],
            "chunks": chunks,
            "rows_url": _rows_url(obj.id),
            "failed_rows_url": _rows_url(obj.id, status=RowStatus.FAILED),
            # Scoped to the customer: its (customer, status, created_at) index narrows the messages first.
            "webhooks_url": reverse("admin:webhooks_webhookmessage_changelist")
            + f"?customer__id__exact={obj.customer_id}&request_id={obj.id}",
            "can_view_phi": can_view_phi(request),
            # The support actions' lines (a queued reprocess's outcome, a refusal included), newest first.
            "history": LogEntry.objects.filter(
                content_type_id=ContentType.objects.get_for_model(BulkRequest).pk, object_id=str(obj.pk)
            )
            .select_related("user")
            .order_by("-action_time")[:HISTORY_LINES],
            "history_url": reverse("admin:bulkimport_bulkrequest_history", args=[obj.pk]),
            "can_act": can_act,
            "can_reprocess": can_act and obj.status in (BulkStatus.PROCESSING, BulkStatus.COMPLETED),
            "can_resend": can_act and obj.status in (BulkStatus.PROCESSING, BulkStatus.COMPLETED, BulkStatus.FAILED),
            "can_expire": can_act and obj.status == BulkStatus.WAITING,
        }

    # --- custom URLs ---

    def get_urls(self):
        view = self.admin_site.admin_view
        custom = [
            path("import/", view(self.import_view), name="bulkimport_bulkrequest_import"),
            path(
                "<path:object_id>/download/<str:kind>/",
                view(self.download_view),
                name="bulkimport_bulkrequest_download",
            ),
            path("<path:object_id>/row/", view(self.row_view), name="bulkimport_bulkrequest_row"),
            path("<path:object_id>/reprocess/", view(self.reprocess_view), name="bulkimport_bulkrequest_reprocess"),
            path("<path:object_id>/resend-webhook/", view(self.resend_view), name="bulkimport_bulkrequest_resend"),
            path("<path:object_id>/expire/", view(self.expire_view), name="bulkimport_bulkrequest_expire"),
        ]
        return custom + super().get_urls()

    def import_view(self, request):
        return admin_views.import_view(self, request)

    def download_view(self, request, object_id: str, kind: str):
        return admin_views.download_view(self, request, object_id, kind)

    def _get_or_404(self, request, object_id: str) -> BulkRequest:
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_permission(request, obj):
            raise Http404("No such bulk request.")
        return obj

    def _back(self, obj: BulkRequest) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:bulkimport_bulkrequest_change", args=[obj.pk]))

    def row_view(self, request, object_id: str):
        """Jumps to row N of this request (the (request, number) unique index): the support shortcut."""
        obj = self._get_or_404(request, object_id)
        text = request.GET.get("number", "").replace(",", "").strip()
        # "line 28" is what a spreadsheet shows for row 27 (the header is line 1).
        line = text.lower().removeprefix("line").strip()
        number = (int(line) - 1) if line != text.lower() and line.isdigit() else int(text) if text.isdigit() else None
        row_id = None
        if number is not None:
            row_id = BulkRow.objects.filter(request_id=obj.id, number=number).values_list("id", flat=True).first()
        if row_id is None:
            messages.warning(request, f"This request has no row {text or '(no number given)'}.")
            return self._back(obj)
        return HttpResponseRedirect(reverse("admin:bulkimport_bulkrow_change", args=[row_id]))

    def _acting(self, request, object_id: str) -> BulkRequest:
        obj = self._get_or_404(request, object_id)
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def _reprocess(self, request, obj: BulkRequest, *, failed_only: bool) -> None:
        rows = obj.failed if failed_only else obj.total
        if obj.status == BulkStatus.COMPLETED and rows > settings.ADMIN_INLINE_REPROCESS_ROWS:
            # Too long for a web request: a worker runs it; the counts on the page update when it is done, and
            # its outcome (a refusal: over the customer's Document Query budget) shows in the request's history.
            try:
                services.bulk_request_reprocess_later(
                    request_id=obj.id, failed_only=failed_only, requested_by=request.user.pk
                )
            except services.ReprocessRefused as exc:
                self.message_user(request, f"Bulk request {obj.id}: {exc}", messages.ERROR)
                return
            what = "failed rows" if failed_only else "all rows"
            self.log_change(request, obj, f"Reprocess of {what} ({rows:,}) queued on a worker.")
            self.message_user(
                request,
                f"Bulk request {obj.id}: reprocessing of {rows:,} row(s) queued on a worker; "
                "reload this page to follow the counts. Its outcome, a refusal included (over the customer's "
                "Document Query budget), shows under History on this page.",
                messages.SUCCESS,
            )
            return
        try:
            outcome = services.bulk_request_reprocess(request_id=obj.id, failed_only=failed_only)
        except services.ReprocessRefused as exc:
            self.message_user(request, f"Bulk request {obj.id}: {exc}", messages.ERROR)
            return
        self.message_user(request, f"Bulk request {obj.id} reprocessed: {outcome}.", messages.SUCCESS)

    def _resend(self, request, obj: BulkRequest) -> None:
        if services.bulk_request_resend_webhook(request_id=obj.id):
            self.message_user(
                request, f"Bulk request {obj.id}: webhook resent with status {obj.status}.", messages.SUCCESS
            )
        else:
            self.message_user(
                request, f"Bulk request {obj.id}: a {obj.status} request has no webhook to resend.", messages.WARNING
            )

    def _expire(self, request, obj: BulkRequest) -> None:
        if services.bulk_request_expire(request_id=obj.id):
            self.message_user(
                request, f"Bulk request {obj.id} expired: its upload URL is no longer accepted.", messages.SUCCESS
            )
        else:
            self.message_user(
                request, f"Bulk request {obj.id} is {obj.status}: only waiting requests expire.", messages.WARNING
            )

    def reprocess_view(self, request, object_id: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self._acting(request, object_id)
        self._reprocess(request, obj, failed_only=request.POST.get("failed_only") == "1")
        return self._back(obj)

    def resend_view(self, request, object_id: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self._acting(request, object_id)
        self._resend(request, obj)
        return self._back(obj)

    def expire_view(self, request, object_id: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self._acting(request, object_id)
        self._expire(request, obj)
        return self._back(obj)

    # --- changelist actions (the same services, for several requests at once) ---

    @admin.action(description="Reprocess all rows", permissions=["change"])
    def reprocess_all(self, request, queryset) -> None:
        for obj in queryset:
            self._reprocess(request, obj, failed_only=False)

    @admin.action(description="Reprocess failed rows only", permissions=["change"])
    def reprocess_failed(self, request, queryset) -> None:
        for obj in queryset:
            self._reprocess(request, obj, failed_only=True)

    @admin.action(description="Resend webhook", permissions=["change"])
    def resend_webhook(self, request, queryset) -> None:
        for obj in queryset:
            self._resend(request, obj)

    @admin.action(description="Expire (waiting requests)", permissions=["change"])
    def expire(self, request, queryset) -> None:
        for obj in queryset:
            self._expire(request, obj)


# --- Filters scoped to one bulk request -----------------------------------------------------------------


def _selected_request(request) -> uuid.UUID | None:
    value = request.GET.get("request")
    return as_uuid(value) if value else None


class BulkRequestFilter(admin.SimpleListFilter):
    """`?request=<id>`: set by the links of a bulk request's page; shown only when set (listing every request
    as a filter choice would not scale)."""

    title = "bulk request"
    parameter_name = "request"

    def lookups(self, request, model_admin):
        value = self.value()
        key = as_uuid(value) if value else None
        if not value or key is None:
            return []
        found = BulkRequest.objects.filter(id=key).values_list("customer__name", "created_at").first()
        if found is None:
            return [(value, f"{value[:8]}… (unknown)")]
        return [(value, f"{value[:8]}… ({found[0]}, {found[1]:%Y-%m-%d %H:%M})")]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        key = as_uuid(value)
        if key is None:
            raise IncorrectLookupParameters(f"{value!r} is not a bulk request id")
        return queryset.filter(request_id=key)


class RowStatusFilter(admin.SimpleListFilter):
    """Offered within one request: (request, status, number) is the index."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return RowStatus.choices if _selected_request(request) else []

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value not in RowStatus.values:
            raise IncorrectLookupParameters(f"{value!r} is not a row status")
        return queryset.filter(status=value)


class ErrorCodeFilter(admin.SimpleListFilter):
    """Rows having an error with this code. Within one request it is `number IN (the request's row numbers with
    that code)`, read from BulkRowError's (request, code, row_number) index; the choices are that request's
    codes with their row counts."""

    title = "error code"
    parameter_name = "error_code"

    def lookups(self, request, model_admin):
        request_id = _selected_request(request)
        if request_id is None:
            return []
        return [(code, f"{code} ({rows:,})") for code, rows in bulk_error_counts(request_id=request_id)]

    def queryset(self, request, queryset):
        code = self.value()
        if code is None:
            return queryset
        request_id = _selected_request(request)
        if request_id is not None:
            numbers = BulkRowError.objects.filter(request_id=request_id, code=code).values("row_number")
            return queryset.filter(request_id=request_id, number__in=numbers)
        errors = BulkRowError.objects.filter(
            request_id=OuterRef("request_id"), row_number=OuterRef("number"), code=code
        )
        return queryset.filter(Exists(errors))


def _search_request_and_number(request, queryset, search_term: str, number_field: str):
    """Search terms: a row number (within the selected request) and/or a bulk request id. A number without a
    request would scan every row of every request: it asks for a request instead."""
    request_id = None
    number = None
    for term in search_term.replace(",", "").split():
        key = as_uuid(term)
        if key is not None:
            request_id = key
        elif term.isdigit():
            number = int(term)
        else:
            return queryset.none()
    if request_id is not None:
        queryset = queryset.filter(request_id=request_id)
    if number is not None:
        if request_id is None and _selected_request(request) is None:
            messages.warning(request, "Row numbers are per request: open the rows from a bulk request's page.")
            return queryset.none()
        queryset = queryset.filter(**{number_field: number})
    return queryset


# --- Rows -----------------------------------------------------------------------------------------------


@admin.register(BulkRow)
class BulkRowAdmin(PhiAccessLogMixin, PhiGuardMixin, LargeTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("row", "request_link", "status", "action", "reason", "patient_link")
    list_display_links = ("row",)
    list_filter = (BulkRequestFilter, RowStatusFilter, ErrorCodeFilter)
    search_fields = ("=number",)  # shows the search box; get_search_results does the (indexed) lookup
    search_help_text = "Row number (within the selected bulk request), or a bulk request id"
    fields = ("request_link", "row", "status", "action", "patient_link", "facility_link", "reason")
    readonly_fields = fields

    def get_ordering(self, request):
        # (request, number) is unique: a deterministic order read straight from its index.
        return ("request_id", "number")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "bulkimport_bulkrow_changelist":
            queryset = queryset.defer("raw", "normalized")  # PHI and bulk: the list shows neither
        return queryset

    def get_object(self, request, object_id, from_field=None):
        if not str(object_id).isdigit():
            return None
        queryset = self.get_queryset(request).select_related("request")
        return queryset.filter(pk=int(object_id)).first()

    def get_search_results(self, request, queryset, search_term):
        return _search_request_and_number(request, queryset, search_term, "number"), False

    @admin.display(description="Row (spreadsheet line)", ordering="number")
    def row(self, obj: BulkRow) -> str:
        return row_and_line(obj.number)

    @admin.display(description="Bulk request", ordering="request_id")
    def request_link(self, obj: BulkRow) -> str:
        return admin_link(BulkRequest, obj.request_id, str(obj.request_id)[:8] + "…")

    @admin.display(description="Patient")
    def patient_link(self, obj: BulkRow) -> str:
        return admin_link(Patient, obj.patient_id)

    @admin.display(description="Facility")
    def facility_link(self, obj: BulkRow) -> str:
        """The row's facilityId cell when it routes the row (an id: not PHI), else the request's facility."""
        routed = (obj.normalized or {}).get("facilityId")
        return admin_link(Facility, routed or obj.request.facility_id)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            errors = list(
                BulkRowError.objects.filter(request_id=obj.request_id, row_number=obj.number)
                .order_by("id")
                .values_list("code", "field", "message")
            )
            context["row_errors"] = errors
            context["can_view_phi"] = can_view_phi(request)
            context["request_url"] = reverse("admin:bulkimport_bulkrequest_change", args=[obj.request_id])
            context["rows_url"] = _rows_url(obj.request_id)
            if context["can_view_phi"]:
                header = admin_views.bulk_input_header(obj.request)
                cells, general = admin_views.side_by_side(
                    header, obj.raw or [], obj.normalized, [(field, message) for _, field, message in errors]
                )
                context.update(cells=cells, general_errors=general, header_missing=header is None)
        return super().render_change_form(request, context, add, change, form_url, obj)


class ErrorCodeOfRequestFilter(ErrorCodeFilter):
    parameter_name = "code"

    def queryset(self, request, queryset):
        code = self.value()
        return queryset if code is None else queryset.filter(code=code)


@admin.register(BulkRowError)
class BulkRowErrorAdmin(PhiGuardMixin, LargeTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("row", "request_link", "code", "field", "message")
    # The code filter lists distinct codes: only within one request (its index), never over the table.
    list_filter = (BulkRequestFilter, ErrorCodeOfRequestFilter)
    search_fields = ("=row_number",)
    search_help_text = "Row number (within the selected bulk request), or a bulk request id"

    def get_ordering(self, request):
        return ("request_id", "row_number", "id")

    def get_search_results(self, request, queryset, search_term):
        return _search_request_and_number(request, queryset, search_term, "row_number"), False

    @admin.display(description="Row (spreadsheet line)", ordering="row_number")
    def row(self, obj: BulkRowError) -> str:
        return row_and_line(obj.row_number)

    @admin.display(description="Bulk request", ordering="request_id")
    def request_link(self, obj: BulkRowError) -> str:
        return admin_link(BulkRequest, obj.request_id, str(obj.request_id)[:8] + "…")
