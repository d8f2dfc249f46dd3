"""Support's view of cohorts: each customer's cohorts with their sizes, the patients of one, a patient's
cohorts, and each customer's rule for unknown cohort names in a bulk file."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from cohorts.models import Cohort, CohortPolicy, PatientCohort
from metriport_bulk.admin_toolkit import PhiGuardMixin, ReadOnlyAdminMixin
from metriport_bulk.lib.ids import as_uuid


@admin.register(Cohort)
class CohortAdmin(PhiGuardMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "customer", "size", "color", "purpose_of_use", "created_at")
    list_filter = ("customer",)
    list_select_related = ("customer",)
    search_fields = ("name",)
    search_help_text = "Cohort name"
    fields = ("id", "customer", "name", "description", "color", "purpose_of_use", "settings", "size", "patients")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(size=Count("patient_links"))

    @admin.display(description="Patients", ordering="size")
    def size(self, obj: Cohort) -> int:
        return getattr(obj, "size", 0)

    @admin.display(description="Patients of this cohort")
    def patients(self, obj: Cohort) -> str:
        url = reverse("admin:patients_patient_changelist") + f"?customer__id__exact={obj.customer_id}&cohort={obj.pk}"
        return format_html('<a href="{}">{} patient(s)</a>', url, getattr(obj, "size", 0))


@admin.register(CohortPolicy)
class CohortPolicyAdmin(PhiGuardMixin, admin.ModelAdmin):
    """Per customer: an unknown cohort name in a bulk file creates the cohort, or fails the row (the default,
    also for a customer without a policy)."""

    list_display = ("customer", "unknown_cohorts")
    list_select_related = ("customer",)
    fields = ("customer", "unknown_cohorts")


class CohortListFilter(admin.SimpleListFilter):
    """The patient list by cohort; the choices are the cohorts of the customer the list is filtered to."""

    title = "cohort"
    parameter_name = "cohort"

    def lookups(self, request, model_admin):
        customer_id = request.GET.get("customer__id__exact")
        if not customer_id:
            return []
        return [(str(c.pk), c.name) for c in Cohort.objects.filter(customer_id=customer_id).order_by("name_key")[:100]]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        cohort_id = as_uuid(value)
        return queryset.filter(cohort_links__cohort_id=cohort_id) if cohort_id else queryset.none()


class PatientCohortInline(admin.TabularInline):
    """A patient's cohorts, on the patient's page."""

    model = PatientCohort
    fk_name = "patient"
    fields = ("cohort", "created_at")
    readonly_fields = ("cohort", "created_at")
    extra = 0
    can_delete = False
    verbose_name = "cohort"
    verbose_name_plural = "cohorts"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("cohort")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
