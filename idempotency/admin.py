"""Support's view of the keys customers sent: which call a key made, and when it frees up."""

from __future__ import annotations

from django.contrib import admin

from idempotency.models import IdempotencyKey
from metriport_bulk.admin_toolkit import NewestFirstMixin, PhiGuardMixin, ReadOnlyAdminMixin


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(PhiGuardMixin, NewestFirstMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("key", "customer", "operation", "resource_id", "status_code", "created_at")
    list_filter = ("operation",)
    list_select_related = ("customer",)
    search_fields = ("=key", "=resource_id")
    search_help_text = "The exact key, or the id of the bulk request or patient it created"
    fields = ("customer", "key", "operation", "resource_id", "status_code", "created_at")
    # The fingerprint (a keyed hash of the call's parameters) tells support nothing and is not shown.
