"""Admin for support staff: customers, API keys, facilities, patients and the PHI access log, under the PHI
rules of metriport_bulk.admin_toolkit."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from cohorts.admin import CohortListFilter, PatientCohortInline
from metriport_bulk.admin_toolkit import (
    LargeTableAdminMixin,
    NewestFirstMixin,
    PhiFieldsMixin,
    PhiGuardMixin,
    ReadOnlyAdminMixin,
    SearchByIdMixin,
    can_view_phi,
    mask_ssn,
    search_uuid,
)
from metriport_bulk.lib.ids import as_uuid
from patients import services
from patients.models import ApiKey, Customer, Facility, Patient, PatientFacility, PhiAccessLog
from patients.phi_log import PhiAccessLogMixin, phi_access_record
from patients.selectors import patient_duplicate_groups
from patients.validators import npi_is_valid

admin.site.site_header = "metriport-bulk support"
admin.site.site_title = "metriport-bulk"
admin.site.index_title = "Support"

DUPLICATE_GROUPS_SHOWN = 200

# --- Customers ------------------------------------------------------------------------------------------


@admin.register(Customer)
class CustomerAdmin(PhiGuardMixin, SearchByIdMixin, admin.ModelAdmin):
    list_display = ("name", "id", "created_at")
    search_fields = ("name",)
    search_help_text = "Customer name or id"
    fields = ("name", "id", "created_at", "related_links")
    readonly_fields = ("id", "created_at", "related_links")

    @admin.display(description="Related")
    def related_links(self, obj: Customer) -> str:
        if obj.pk is None:
            return "-"
        links = [
            (reverse("admin:patients_facility_changelist") + f"?customer__id__exact={obj.pk}", "Facilities"),
            (reverse("admin:patients_apikey_changelist") + f"?customer__id__exact={obj.pk}", "API keys"),
            (reverse("admin:bulkimport_bulkrequest_changelist") + f"?customer__id__exact={obj.pk}", "Bulk requests"),
            (reverse("admin:patients_patient_changelist") + f"?customer__id__exact={obj.pk}", "Patients"),
            (reverse("admin:patients_patient_duplicates") + f"?customer={obj.pk}", "Patients sharing a match key"),
            (reverse("admin:bulkimport_bulkrequest_import") + f"?customer={obj.pk}", "Start a bulk import"),
        ]
        return format_html(" · ".join(['<a href="{}">{}</a>'] * len(links)), *[part for link in links for part in link])

    def save_model(self, request, obj: Customer, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = services.customer_create(name=obj.name)
        obj.pk, obj.name, obj.created_at = created.pk, created.name, created.created_at
        obj._state.adding = False


# --- API keys -------------------------------------------------------------------------------------------


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("customer", "name")


@admin.register(ApiKey)
class ApiKeyAdmin(PhiGuardMixin, admin.ModelAdmin):
    """Keys are created by the service; the clear key is shown once (a message), the hash never."""

    list_display = ("prefix", "name", "customer", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("customer",)
    search_fields = ("=prefix", "customer__name")
    search_help_text = "Key prefix (the part after mbk_) or customer name"
    readonly_fields = ("customer", "prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke_keys",)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["customer", "name"]
        return ["name", "customer", "prefix", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        new = services.api_key_create(customer=obj.customer, name=obj.name)
        for field in ("id", "prefix", "hashed_key", "created_at"):
            setattr(obj, field, getattr(new.api_key, field))
        obj._state.adding = False
        messages.warning(
            request,
            format_html(
                "New API key for {}: <code>{}</code> — copy it now, it is shown only this once.",
                obj.customer,
                new.clear_key,
            ),
        )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the row documents who had access

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request, queryset) -> None:
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            services.api_key_revoke(api_key=api_key)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} API key(s).", messages.SUCCESS)


# --- Facilities -----------------------------------------------------------------------------------------


class FacilityForm(forms.ModelForm):
    class Meta:
        model = Facility
        fields = ("customer", "name", "npi", "tin", "active", "address")

    def clean_npi(self) -> str:
        npi = self.cleaned_data["npi"].strip()
        if not npi_is_valid(npi):
            raise forms.ValidationError("An NPI is 10 digits ending with a valid check digit.")
        return npi


@admin.register(Facility)
class FacilityAdmin(PhiGuardMixin, SearchByIdMixin, admin.ModelAdmin):
    form = FacilityForm
    list_display = ("name", "customer", "npi", "active", "id", "created_at")
    list_filter = ("active", "customer")
    list_select_related = ("customer",)
    search_fields = ("name", "=npi", "customer__name")
    search_help_text = "Facility name, NPI, customer name or facility id"
    readonly_fields = ("id", "created_at", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        # The owner of a facility never changes: its patients and requests belong to that customer.
        return (*self.readonly_fields, "customer") if obj is not None else self.readonly_fields

    def save_model(self, request, obj: Facility, form, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in ("name", "npi", "tin", "active", "address")}
        if change:
            services.facility_update(facility=obj, **fields)
            return
        created = services.facility_create(customer=form.cleaned_data["customer"], **fields)
        obj.pk, obj.created_at, obj.updated_at = created.pk, created.created_at, created.updated_at
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # bulk requests reference facilities (PROTECT); deactivate instead


# --- Patients -------------------------------------------------------------------------------------------


class PatientFacilityInline(admin.TabularInline):
    model = PatientFacility
    fields = ("facility", "created_at")
    readonly_fields = ("facility", "created_at")
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("facility")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Patient)
class PatientAdmin(
    PhiAccessLogMixin,
    SearchByIdMixin,
    PhiFieldsMixin,
    NewestFirstMixin,
    LargeTableAdminMixin,
    ReadOnlyAdminMixin,
    admin.ModelAdmin,
):
    phi_displays = ("name", "ssn_masked")  # besides Patient.PHI_FIELDS
    phi_labels = {"name": "Name", "ssn_masked": "SSN"}
    phi_log_pages = ("change", "changelist")
    list_display = ("id", "customer", "external_id", "name", "dob", "ssn_masked", "created_at")
    list_filter = ("customer", CohortListFilter)
    list_select_related = ("customer",)
    search_fields = ("=external_id",)
    search_help_text = "Patient id or external id"
    fields = (
        "id",
        "customer",
        "external_id",
        "first_name",
        "last_name",
        "dob",
        "gender_at_birth",
        "ssn",
        "drivers_license",
        "addresses",
        "contacts",
        "created_at",
        "updated_at",
        "document_queries_link",
    )
    readonly_fields = fields
    inlines = (PatientFacilityInline, PatientCohortInline)

    def get_queryset(self, request):
        # The list never needs the JSON lists nor the match key; the change page does (one row).
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("addresses", "contacts", "drivers_license", "match_key", "zips")
        return queryset

    @admin.display(description="Name")
    def name(self, obj: Patient) -> str:
        return f"{obj.first_name} {obj.last_name}"

    @admin.display(description="SSN")
    def ssn_masked(self, obj: Patient) -> str:
        return mask_ssn(obj.ssn) or "-"

    @admin.display(description="Document Queries")
    def document_queries_link(self, obj: Patient) -> str:
        url = reverse("admin:docqueries_documentquery_changelist") + f"?q={obj.pk}"
        return format_html('<a href="{}">Document Queries of this patient</a>', url)

    # --- duplicate groups ---

    def get_urls(self):
        view = self.admin_site.admin_view
        custom = [path("duplicates/", view(self.duplicates_view), name="patients_patient_duplicates")]
        return custom + super().get_urls()

    def duplicates_view(self, request):
        """Patients of one customer that share a match key (patients.selectors.patient_duplicate_groups): ids and
        links for every staff member who may view patients; names and dates of birth only for PHI viewers (the
        view is then logged in the PHI access log). Read only: nothing is merged here."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        customer = None
        customer_id = as_uuid(request.GET.get("customer", ""))
        if customer_id is not None:
            customer = Customer.objects.filter(id=customer_id).first()
        groups = patient_duplicate_groups(
            customer_id=customer.id if customer else None, limit=DUPLICATE_GROUPS_SHOWN + 1
        )
        more = len(groups) > DUPLICATE_GROUPS_SHOWN
        groups = groups[:DUPLICATE_GROUPS_SHOWN]
        shows_phi = can_view_phi(request)
        ids = [patient_id for group in groups for patient_id in group.patient_ids]
        patients = Patient.objects.in_bulk(ids) if shows_phi else {}
        rows = [
            {
                "customer_id": group.customer_id,
                "shares_zip": group.shares_zip,
                "patients": [
                    {
                        "id": patient_id,
                        "url": reverse("admin:patients_patient_change", args=[patient_id]),
                        "name": f"{patients[patient_id].first_name} {patients[patient_id].last_name}"
                        if patient_id in patients
                        else None,
                        "dob": patients[patient_id].dob if patient_id in patients else None,
                    }
                    for patient_id in group.patient_ids
                ],
            }
            for group in groups
        ]
        if shows_phi and ids:
            phi_access_record(
                request=request, action=PhiAccessLog.Action.LIST, model="patients.patient", object_ids=ids
            )
        return TemplateResponse(
            request,
            "admin/patients/patient/duplicates.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Patients sharing a match key",
                "customer": customer,
                "groups": rows,
                "more": more,
                "shown": DUPLICATE_GROUPS_SHOWN,
                "shows_phi": shows_phi,
            },
        )


# --- PHI access log -------------------------------------------------------------------------------------


class LoggedModelFilter(admin.SimpleListFilter):
    """Fixed choices: a DISTINCT over the whole log (what the default filter does) would scan it."""

    title = "page of"
    parameter_name = "model"
    logged_models = (
        "patients.patient",
        "bulkimport.bulkrow",
        "docqueries.documentquery",
        "webhooks.webhookmessage",
        "bulkimport.bulkrequest:input",
        "bulkimport.bulkrequest:result",
    )

    def lookups(self, request, model_admin):
        return [(choice, choice) for choice in self.logged_models]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset if value is None else queryset.filter(model=value)


@admin.register(PhiAccessLog)
class PhiAccessLogAdmin(PhiFieldsMixin, LargeTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read by support: who saw which patient or row, when, on which page. Nobody adds, changes or deletes
    (ReadOnlyAdminMixin, superusers included; the model refuses too)."""

    list_display = ("at", "username", "action", "model", "object_count", "path")
    list_filter = ("user", "action", LoggedModelFilter, "at")  # every user (few), not a DISTINCT over the log
    date_hierarchy = "at"
    search_fields = ("=username",)
    search_help_text = "A patient, row or request id (who saw it), or a username"
    fields = ("at", "user", "username", "action", "model", "object_ids", "object_count", "path", "query")
    readonly_fields = fields
    ordering = ("-at", "-id")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if term and (search_uuid(term) is not None or term.isdigit()):
            return queryset.filter(object_ids__icontains=f'"{term}"'), False
        return super().get_search_results(request, queryset, search_term)
