"""Admin for Document Queries (read-only: the services and the backend write them)."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin
from django.core.validators import MaxValueValidator
from django.db.models import Q
from django.utils import timezone

from docqueries.models import DocumentQuery, DocumentQueryBudget
from docqueries.services import REQUERY_MAX_HOURS, queries_started_today
from metriport_bulk.admin_toolkit import (
    LargeTableAdminMixin,
    NewestFirstMixin,
    PhiFieldsMixin,
    PhiGuardMixin,
    ReadOnlyAdminMixin,
    admin_link,
    search_uuid,
)
from patients.models import Patient
from patients.phi_log import PhiAccessLogMixin


@admin.register(DocumentQuery)
class DocumentQueryAdmin(
    PhiAccessLogMixin, PhiFieldsMixin, NewestFirstMixin, LargeTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    list_display = (
        "id",
        "customer",
        "patient_link",
        "status",
        "document_count",
        "attempts",
        "started_at",
        "finished_at",
        "error",
    )
    list_filter = ("status", "customer")
    list_select_related = ("customer",)
    search_fields = ("=id",)
    search_help_text = "Document Query id or patient id"
    newest_first_field = "started_at"
    fields = (
        "id",
        "customer",
        "patient_link",
        "bulk_request_link",
        "status",
        "started_at",
        "finished_at",
        "attempts",
        "next_attempt_at",
        "express",
        "error",
        "document_count",
        "documents",
    )
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        key = search_uuid(search_term)
        if key is None:
            return queryset.none(), False
        return queryset.filter(Q(id=key) | Q(patient_id=key)), False  # both indexed

    @admin.display(description="Patient")
    def patient_link(self, obj: DocumentQuery) -> str:
        return admin_link(Patient, obj.patient_id)

    @admin.display(description="Bulk request")
    def bulk_request_link(self, obj: DocumentQuery) -> str:
        return admin_link("bulkimport.BulkRequest", obj.bulk_request_id)  # docqueries does not import bulkimport

    @admin.display(description="Documents")
    def document_count(self, obj: DocumentQuery) -> int:
        return len(obj.documents or [])


class DocumentQueryBudgetForm(forms.ModelForm):
    class Meta:
        model = DocumentQueryBudget
        fields = ("customer", "per_request", "per_day", "requery_after_hours")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The window is subtracted from now: one reaching before year 1 would fail every import of the customer.
        hours = self.fields["requery_after_hours"]
        hours.validators.append(MaxValueValidator(REQUERY_MAX_HOURS))
        hours.widget.attrs["max"] = REQUERY_MAX_HOURS


@admin.register(DocumentQueryBudget)
class DocumentQueryBudgetAdmin(PhiGuardMixin, admin.ModelAdmin):
    """Each customer's Document Query caps, and its use: queries started today (UTC) and in the last 30 days.
    A customer without a budget has no caps (add one here)."""

    form = DocumentQueryBudgetForm
    list_display = ("customer", "per_request", "per_day", "requery_after_hours", "used_today", "used_30_days")
    list_select_related = ("customer",)
    fields = ("customer", "per_request", "per_day", "requery_after_hours", "used_today", "used_30_days")
    readonly_fields = ("used_today", "used_30_days")

    @admin.display(description="started today (UTC)")
    def used_today(self, obj: DocumentQueryBudget) -> int:
        return queries_started_today(customer_id=obj.customer_id) if obj.customer_id else 0

    @admin.display(description="started in 30 days")
    def used_30_days(self, obj: DocumentQueryBudget) -> int:
        if not obj.customer_id:
            return 0
        since = timezone.now() - timedelta(days=30)
        return DocumentQuery.objects.filter(customer_id=obj.customer_id, started_at__gte=since).count()
