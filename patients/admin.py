"""Admin for support staff: customers, API keys, facilities and patients, plus the helpers every admin module of
the project shares (PHI rules, the COUNT-free paginator, read-only pages).

PHI rules: only staff with `patients.view_phi` see demographics; everybody else sees ids and statuses with each
PHI field replaced by a notice. SSNs are masked in lists, even for PHI viewers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from functools import cached_property

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from metriport_bulk.lib.ids import as_uuid
from patients import services
from patients.models import ApiKey, Customer, Facility, Patient, PatientFacility, PhiAccessLog
from patients.phi_log import phi_access_record
from patients.validators import npi_is_valid

admin.site.site_header = "metriport-bulk support"
admin.site.site_title = "metriport-bulk"
admin.site.index_title = "Support"

PHI_PERMISSION = "patients.view_phi"
PHI_HIDDEN = "hidden (no PHI permission)"


def can_view_phi(request: HttpRequest) -> bool:
    return request.user.has_perm(PHI_PERMISSION)


def mask_ssn(ssn: str) -> str:
    """***-**-1234: the last four digits only (what support reads back to a caller)."""
    return f"***-**-{ssn[-4:]}" if ssn else ""


def admin_link(obj_or_model: Model | type[Model], pk, label: str | None = None) -> str:
    """A link to an object's admin page built from its id alone (no query for the related object)."""
    if pk is None:
        return "-"
    opts = obj_or_model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])
    return format_html('<a href="{}">{}</a>', url, label or str(pk))


# --- Large tables ---------------------------------------------------------------------------------------


def estimated_row_count(model: type[Model], using: str = "default") -> int | None:
    """The planner's estimate of a table's rows (pg_class.reltuples), or None off PostgreSQL or when the table
    was never analyzed."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] >= 0 else None


class EstimatedCountPaginator(Paginator):
    """A changelist paginator that never counts a whole huge table: unfiltered, the count is PostgreSQL's
    estimate; filtered, it is an exact COUNT (admin filters on big tables are all indexed and scoped to one
    bulk request, so at most 100,000 index entries). Small tables are counted exactly."""

    exact_below = 50_000
    estimated = False  # True once `count` is the estimate (the pagination template says "about")

    def _estimate(self) -> int | None:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet) or queryset.query.where:
            return None
        estimate = estimated_row_count(queryset.model, queryset.db)
        return estimate if estimate is not None and estimate >= self.exact_below else None

    @cached_property
    def count(self) -> int:
        estimate = self._estimate()
        if estimate is None:
            return super().count
        self.estimated = True
        return estimate


class LargeTableAdminMixin:
    """Changelist settings for tables that grow with every import."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # "Show counts" runs one COUNT per filter choice
    list_per_page = 50


class NewestFirstMixin:
    """Newest first when the list is scoped to a customer (its `(customer, -<time>)` index gives the order);
    unscoped, primary-key order, which an index also gives: sorting a whole big table by time would not."""

    newest_first_field = "created_at"

    def get_ordering(self, request):
        if request.GET.get("customer__id__exact"):
            return (f"-{self.newest_first_field}", "-pk")
        return ("-pk",)


class ReadOnlyAdminMixin:
    """Pages that show state written by the services; nothing is edited by hand here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# Model fields holding PHI (demographics, a patient's documents, a file row's cells, payloads with links to
# PHI), by "app_label.model_name". Without `patients.view_phi` no lookup, filter, ordering or search may touch
# them, directly or through a relation (`patient__ssn`). Patient.external_id is not here: it is the customer's
# own identifier, shown to every staff member in the patient list and the handle support is given on the phone;
# a lookup on it tells nothing the list does not show.
PHI_MODEL_FIELDS: dict[str, frozenset[str]] = {
    "patients.patient": frozenset(
        {
            "first_name",
            "last_name",
            "dob",
            "gender_at_birth",
            "ssn",
            "drivers_license",
            "addresses",
            "contacts",
            "match_key",
            "zips",
        }
    ),
    "bulkimport.bulkrow": frozenset({"raw", "normalized"}),
    "docqueries.documentquery": frozenset({"documents"}),
    "webhooks.webhookmessage": frozenset({"body"}),
    "patients.phiaccesslog": frozenset({"query"}),
}
# Secrets: no lookup on them for anybody.
SECRET_MODEL_FIELDS: dict[str, frozenset[str]] = {
    "patients.apikey": frozenset({"hashed_key"}),
    "webhooks.webhookendpoint": frozenset({"key"}),
}


def _touches(model: type[Model], path: str, registry: dict[str, frozenset[str]]) -> bool:
    """Whether a lookup path (`patient__ssn__startswith`, `raw__0__icontains`, `-dob`) reaches a field of
    `registry`, following relations (forward and reverse) until the first non-relational field."""
    for part in path.lstrip("-+?").split(LOOKUP_SEP):
        if part == "pk":
            part = model._meta.pk.name
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False  # a transform or lookup name: the field before it was not listed
        if field.name in registry.get(model._meta.label_lower, ()):
            return True
        if not field.is_relation or field.related_model is None:
            return False
        model = field.related_model
    return False


def lookup_is_refused(request: HttpRequest, model: type[Model], path: str) -> bool:
    if _touches(model, path, SECRET_MODEL_FIELDS):
        return True
    return not can_view_phi(request) and _touches(model, path, PHI_MODEL_FIELDS)


def _ordering_path(item) -> str | None:
    if isinstance(item, str):
        return item
    expression = getattr(item, "expression", item)  # OrderBy(F("dob")) -> F("dob")
    return getattr(expression, "name", None)


class PhiGuardedChangeList(ChangeList):
    """Ignores `o=` columns whose ordering field is refused to this user (the page is then the unordered one)."""

    def __init__(self, request, *args, **kwargs) -> None:
        self.guarded_request = request  # set first: super().__init__ builds the ordering
        super().__init__(request, *args, **kwargs)

    def get_ordering_field(self, field_name):
        order_field = super().get_ordering_field(field_name)
        path = _ordering_path(order_field)
        if path is not None and lookup_is_refused(self.guarded_request, self.model, path):
            return None
        return order_field


# Lookups whose value the database parses itself (a range literal, a regular expression, a full-text query):
# a bad value there is a database error (a 500), not the 400 Django gives every other bad lookup. No admin page
# needs them, so nobody may use them in a URL.
UNSAFE_LOOKUPS = frozenset(
    {"contained_by", "overlap", "regex", "iregex", "search", "trigram_similar", "trigram_word_similar", "unaccent"}
)


class PhiGuardMixin:
    """The one guard of every admin: refuses (400, SuspiciousOperation) each changelist lookup that reaches a
    PHI field (PHI_MODEL_FIELDS) for staff without `patients.view_phi`, and a secret (SECRET_MODEL_FIELDS)
    for everybody; drops such fields from the search fields, list filters and ordering. A refused lookup never
    reaches the database, so no count or page tells whether anything matched."""

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        if request is not None and lookup_is_refused(request, self.model, lookup):
            return False
        if lookup.rsplit("__", 1)[-1] in UNSAFE_LOOKUPS:
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_changelist(self, request, **kwargs):
        return PhiGuardedChangeList

    def get_ordering(self, request):
        ordering = super().get_ordering(request) or ()
        return [item for item in ordering if not self._refused(request, _ordering_path(item))]

    def get_search_fields(self, request):
        # Django's get_search_results reads these; the admins' own searches look up ids and numbers only.
        fields = super().get_search_fields(request)
        return [field for field in fields if not self._refused(request, field.lstrip("^=@"))]

    def get_list_filter(self, request):
        kept = []
        for item in super().get_list_filter(request):
            name = item[0] if isinstance(item, (list, tuple)) else item
            if isinstance(name, str) and self._refused(request, name):
                continue
            kept.append(item)
        return kept

    def _refused(self, request, path: str | None) -> bool:
        return path is not None and lookup_is_refused(request, self.model, path)


class PhiFieldsMixin(PhiGuardMixin):
    """Swaps each of `phi_fields` for a notice, in the change page and the list, unless the user may see PHI.

    The replacement is a display callable named `<field>__hidden`, created per admin instance, so one page never
    renders the value itself for a user without the permission."""

    phi_fields: Sequence[str] = ()
    phi_labels: dict[str, str] = {}

    def __init__(self, model, admin_site) -> None:
        super().__init__(model, admin_site)
        for name in self.phi_fields:
            setattr(self, self._hidden_name(name), self._notice(self._label(name)))

    def _label(self, name: str) -> str:
        if name in self.phi_labels:
            return self.phi_labels[name]
        try:
            return capfirst(str(self.model._meta.get_field(name).verbose_name))
        except FieldDoesNotExist:
            attr = getattr(type(self), name, None)
            return str(getattr(attr, "short_description", name.replace("_", " ").capitalize()))

    @staticmethod
    def _hidden_name(name: str) -> str:
        return f"{name}__hidden"

    @staticmethod
    def _notice(label: str) -> Callable:
        def notice(obj) -> str:
            return PHI_HIDDEN

        notice.short_description = label  # type: ignore[attr-defined]
        return notice

    def _swap(self, request, names: Sequence) -> list:
        if can_view_phi(request):
            return list(names)
        return [self._hidden_name(name) if name in self.phi_fields else name for name in names]

    def get_fields(self, request, obj=None):
        return self._swap(request, super().get_fields(request, obj))

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        return [(title, {**options, "fields": self._swap(request, options["fields"])}) for title, options in fieldsets]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly + [self._hidden_name(name) for name in self.phi_fields]

    def get_list_display(self, request):
        return self._swap(request, super().get_list_display(request))

    def get_search_fields(self, request):
        fields = super().get_search_fields(request)
        if can_view_phi(request):
            return fields
        return [field for field in fields if field.lstrip("^=@").split("__")[0] not in self.phi_fields]


class PhiAccessLogMixin:
    """Writes a PHI access log row each time a PHI viewer is shown one of `phi_log_pages` ("change": the object's
    page, "changelist": a list with PHI columns, logging the ids on the page)."""

    phi_log_pages: Sequence[str] = ("change",)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if "change" in self.phi_log_pages and self._shows_phi(request, response):
            original = response.context_data.get("original")
            if original is not None:
                self._log(request, PhiAccessLog.Action.VIEW, [original.pk])
        return response

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if "changelist" in self.phi_log_pages and self._shows_phi(request, response):
            changelist = response.context_data.get("cl")
            if changelist is not None:
                self._log(request, PhiAccessLog.Action.LIST, [obj.pk for obj in changelist.result_list])
        return response

    @staticmethod
    def _shows_phi(request, response) -> bool:
        return response.status_code == 200 and hasattr(response, "context_data") and can_view_phi(request)

    def _log(self, request, action: str, ids: list) -> None:
        phi_access_record(request=request, action=action, model=self.model._meta.label_lower, object_ids=ids)


def hide_save_buttons(context: dict) -> None:
    """For pages whose fields are all read-only but whose model grants `change` (for actions)."""
    context.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False, show_delete=False)


def search_uuid(term: str) -> uuid.UUID | None:
    return as_uuid(term.strip()) if term else None


class SearchByIdMixin:
    """A search term that is an id finds that object by primary key; other terms use search_fields."""

    def get_search_results(self, request, queryset, search_term):
        key = search_uuid(search_term)
        if key is not None:
            return queryset.filter(id=key), False
        return super().get_search_results(request, queryset, search_term)


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
    phi_fields = (
        "name",
        "first_name",
        "last_name",
        "dob",
        "gender_at_birth",
        "ssn",
        "ssn_masked",
        "drivers_license",
        "addresses",
        "contacts",
    )
    phi_labels = {"name": "Name", "ssn_masked": "SSN"}
    phi_log_pages = ("change", "changelist")
    list_display = ("id", "customer", "external_id", "name", "dob", "ssn_masked", "created_at")
    list_filter = ("customer",)
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
    inlines = (PatientFacilityInline,)

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

    phi_fields = ("query",)  # a PHI viewer's lookups (`?ssn=...`) are PHI themselves
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
