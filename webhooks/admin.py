"""Admin for webhooks: each customer's endpoint (never its signing key), the messages and every delivery attempt.
Support redelivers messages through `webhook_redeliver`."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils.html import format_html

from metriport_bulk.admin_toolkit import (
    PHI_HIDDEN,
    LargeTableAdminMixin,
    NewestFirstMixin,
    PhiGuardMixin,
    ReadOnlyAdminMixin,
    can_view_phi,
    hide_save_buttons,
    search_uuid,
)
from patients.phi_log import PhiAccessLogMixin
from webhooks import types
from webhooks.models import DeliveryAttempt, WebhookEndpoint, WebhookMessage
from webhooks.services import webhook_redeliver

# What a payload shows staff without the PHI permission: its shape, and the values of these keys (ids, statuses,
# the envelope) only. Every other value is hidden, whatever the message type: external ids, document titles and
# file names, pre-signed links to result files (a capability to PHI), and any key a sender adds later.
SHOWN_PAYLOAD_KEYS = frozenset({"messageId", "when", "type", "requestId", "patientId", "status"})


def _redact_payload(value, *, shown: bool = False):
    if isinstance(value, dict):
        return {key: _redact_payload(item, shown=key in SHOWN_PAYLOAD_KEYS) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_payload(item) for item in value]
    return value if shown and isinstance(value, str) else PHI_HIDDEN


class MessageTypeFilter(admin.SimpleListFilter):
    """Fixed choices: a DISTINCT over the whole outbox (what the default filter does) would scan it."""

    title = "message type"
    parameter_name = "message_type"

    def lookups(self, request, model_admin):
        return [(kind, kind) for kind in (types.BULK_PATIENT_CREATE, types.DOCUMENT_DOWNLOAD, types.PING)]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset if value is None else queryset.filter(message_type=value)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(PhiGuardMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # `key` is the signing secret: never shown. The URL is changed by the customer (it must answer a ping).
    list_display = ("customer", "url", "last_success_at", "last_failure_at", "last_error")
    list_select_related = ("customer",)
    search_fields = ("customer__name", "url")
    fields = ("customer", "url", "created_at", "updated_at", "last_success_at", "last_failure_at", "last_error")
    readonly_fields = fields


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ("number", "started_at", "succeeded", "status_code", "latency_ms", "error")
    readonly_fields = fields
    ordering = ("number",)
    extra = 0
    can_delete = False
    max_num = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookMessage)
class WebhookMessageAdmin(PhiAccessLogMixin, PhiGuardMixin, NewestFirstMixin, LargeTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "customer",
        "message_type",
        "request_id",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "created_at",
        "last_attempt_at",
    )
    list_filter = ("status", MessageTypeFilter, "customer")
    list_select_related = ("customer",)
    search_fields = ("=request_id",)
    search_help_text = "Message id or bulk request id"
    actions = ("redeliver",)
    fields = (
        "id",
        "customer",
        "message_type",
        "request_id",
        "status",
        "attempts",
        "failures",
        "created_at",
        "next_attempt_at",
        "give_up_at",
        "last_attempt_at",
        "delivered_at",
        "last_status_code",
        "last_error",
        "payload",
    )
    readonly_fields = fields
    inlines = (DeliveryAttemptInline,)

    def get_queryset(self, request) -> QuerySet:
        queryset = super().get_queryset(request)
        match = request.resolver_match
        if match is not None and match.url_name == "webhooks_webhookmessage_changelist":
            queryset = queryset.defer("body")
        return queryset

    def get_search_results(self, request, queryset, search_term):
        key = search_uuid(search_term)
        if key is None:
            return super().get_search_results(request, queryset, search_term)
        by_id = queryset.filter(id=key)
        if by_id.exists():
            return by_id, False
        return queryset.filter(request_id=str(key)), False

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        hide_save_buttons(context)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields

    @admin.display(description="Payload (sent byte for byte on every attempt)")
    def payload(self, obj: WebhookMessage) -> str:
        # Display callables get no request: get_object marks whether this user may see PHI.
        text = self._payload_text(obj, reveal=getattr(obj, "_reveal_phi", False))
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)

    @staticmethod
    def _payload_text(obj: WebhookMessage, *, reveal: bool) -> str:
        try:
            payload = json.loads(bytes(obj.body))
        except (TypeError, ValueError):
            return "(not JSON)"
        return json.dumps(payload if reveal else _redact_payload(payload), indent=2)

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj._reveal_phi = can_view_phi(request)
        return obj

    @admin.action(description="Redeliver selected messages", permissions=["change"])
    def redeliver(self, request, queryset) -> None:
        rescheduled = []
        for message_id in queryset.values_list("id", flat=True):
            rescheduled += webhook_redeliver(message_id=message_id)
        self.message_user(request, f"{len(rescheduled)} message(s) scheduled for redelivery.", messages.SUCCESS)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(PhiGuardMixin, LargeTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("message", "number", "started_at", "succeeded", "status_code", "latency_ms", "error")
    list_filter = ("succeeded", "started_at")
    list_select_related = ("message",)
    search_fields = ("=message__id",)
    search_help_text = "Message id"
    ordering = ("-id",)

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).defer("message__body")

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        key = search_uuid(search_term)
        return (queryset.filter(message_id=key) if key is not None else queryset.none()), False
