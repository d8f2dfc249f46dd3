"""The admin toolkit every app's admin module shares: the PHI rules (who sees demographics, which lookups,
filters and orderings are refused to staff without the permission), the COUNT-free paginator for big tables,
newest-first and read-only pages, and small helpers (links, id search).

PHI rules: only staff with `patients.view_phi` see demographics; everybody else sees ids and statuses with each
PHI field replaced by a notice, and can learn nothing of PHI from any lookup. SSNs are masked in lists, even for
PHI viewers. The PHI access log (patients.phi_log) records what PHI viewers are shown. Which fields hold PHI or
secrets each model declares itself (metriport_bulk.lib.phi); nothing here names another app's fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Paginator
from django.db.models import Model, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import capfirst

from metriport_bulk.lib import phi
from metriport_bulk.lib.bulkdb import estimated_row_count
from metriport_bulk.lib.ids import as_uuid

if TYPE_CHECKING:
    # The mixins below are only ever mixed into a ModelAdmin: type-check them as one.
    AdminBase = admin.ModelAdmin[Any]
else:
    AdminBase = object

PHI_PERMISSION = "patients.view_phi"
PHI_HIDDEN = "hidden (no PHI permission)"


def can_view_phi(request: HttpRequest) -> bool:
    return request.user.has_perm(PHI_PERMISSION)


def mask_ssn(ssn: str) -> str:
    """***-**-1234: the last four digits only (what support reads back to a caller)."""
    return f"***-**-{ssn[-4:]}" if ssn else ""


def admin_link(model: Model | type[Model] | str, pk: object, label: str | None = None) -> str:
    """A link to an object's admin page built from its id alone (no query for the related object). `model`
    may be named ("app_label.ModelName") by an app that does not import the model's app."""
    if pk is None:
        return "-"
    if isinstance(model, str):
        app_label, _, model_name = model.partition(".")
    else:
        app_label, model_name = model._meta.app_label, model._meta.model_name or ""
    url = reverse(f"admin:{app_label}_{model_name.lower()}_change", args=[pk])
    return format_html('<a href="{}">{}</a>', url, label or str(pk))


# --- Large tables ---------------------------------------------------------------------------------------


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


class LargeTableAdminMixin(AdminBase):
    """Changelist settings for tables that grow with every import."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # "Show counts" runs one COUNT per filter choice
    list_per_page = 50


class NewestFirstMixin(AdminBase):
    """Newest first when the list is scoped to a customer (its `(customer, -<time>)` index gives the order);
    unscoped, primary-key order, which an index also gives: sorting a whole big table by time would not."""

    newest_first_field = "created_at"

    def get_ordering(self, request):
        if request.GET.get("customer__id__exact"):
            return (f"-{self.newest_first_field}", "-pk")
        return ("-pk",)


class ReadOnlyAdminMixin(AdminBase):
    """Pages that show state written by the services; nothing is edited by hand here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# Without `patients.view_phi` no lookup, filter, ordering or search may touch a model's PHI_FIELDS, directly or
# through a relation (`patient__ssn`); nobody may touch its SECRET_FIELDS.


def _touches(model: type[Model], path: str, declared: Callable[[type[Model]], frozenset[str]]) -> bool:
    """Whether a lookup path (`patient__ssn__startswith`, `raw__0__icontains`, `-dob`) reaches a field the models
    declare (`declared(model)`), following relations (forward and reverse) until the first non-relational field."""
    for part in path.lstrip("-+?").split(LOOKUP_SEP):
        if part == "pk":
            part = model._meta.pk.name
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False  # a transform or lookup name: the field before it was not listed
        if field.name in declared(model):
            return True
        if not field.is_relation or field.related_model is None:
            return False
        model = field.related_model
    return False


def lookup_is_refused(request: HttpRequest, model: type[Model], path: str) -> bool:
    if _touches(model, path, phi.secret_fields):
        return True
    return not can_view_phi(request) and _touches(model, path, phi.phi_fields)


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


# Lookups whose value the database parses itself (a range literal, a regular expression, a full-text query), or
# that Django splits into a fixed number of parts (`range`: a value without exactly one comma raised while
# counting): a bad value there is a 500, not the 400 Django gives every other bad lookup. No admin page needs
# them, so nobody may use them in a URL.
UNSAFE_LOOKUPS = frozenset(
    {
        "contained_by", "overlap", "range", "regex", "iregex", "search", "trigram_similar", "trigram_word_similar",
        "unaccent",
    }
)  # fmt: skip


class PhiGuardMixin(AdminBase):
    """The one guard of every admin: refuses (400, SuspiciousOperation) each changelist lookup that reaches a
    PHI field (the models' PHI_FIELDS) for staff without `patients.view_phi`, and a secret (SECRET_FIELDS)
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
    """Swaps each PHI field of the model (its PHI_FIELDS), and each display of the admin computed from them
    (`phi_displays`), for a notice, in the change page and the list, unless the user may see PHI.

    The replacement is a display callable named `<field>__hidden`, created per admin instance, so one page never
    renders the value itself for a user without the permission."""

    phi_displays: Sequence[str] = ()
    phi_labels: dict[str, str] = {}

    def __init__(self, model, admin_site) -> None:
        super().__init__(model, admin_site)
        self.phi_fields: tuple[str, ...] = (*phi.phi_fields(model), *self.phi_displays)
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


def hide_save_buttons(context: dict) -> None:
    """For pages whose fields are all read-only but whose model grants `change` (for actions)."""
    context.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False, show_delete=False)


def search_uuid(term: str) -> uuid.UUID | None:
    return as_uuid(term.strip()) if term else None


class SearchByIdMixin(AdminBase):
    """A search term that is an id finds that object by primary key; other terms use search_fields."""

    def get_search_results(self, request, queryset, search_term):
        key = search_uuid(search_term)
        if key is not None:
            return queryset.filter(id=key), False
        return super().get_search_results(request, queryset, search_term)
