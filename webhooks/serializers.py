from __future__ import annotations

from rest_framework import serializers

from metriport_bulk.lib.http import MAX_URL_LENGTH


class WebhookSettingsInputSerializer(serializers.Serializer):
    webhookUrl = serializers.CharField(  # noqa: N815 - the API's field name
        allow_null=True, allow_blank=True, max_length=MAX_URL_LENGTH, trim_whitespace=True
    )


class WebhookSettingsSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The settings' id (one per customer).")
    webhookUrl = serializers.CharField(allow_null=True)  # noqa: N815
    webhookKey = serializers.CharField(allow_null=True)  # noqa: N815


class WebhookHealthSerializer(serializers.Serializer):
    """Ours; the answer of GET /settings/webhook is WebhookStatusSerializer's fields, then these."""

    webhookUrl = serializers.CharField(allow_null=True, source="webhook_url")  # noqa: N815
    status = serializers.ChoiceField(choices=["not-configured", "ok", "failing"])
    lastSuccessAt = serializers.DateTimeField(allow_null=True, source="last_success_at")  # noqa: N815
    lastFailureAt = serializers.DateTimeField(allow_null=True, source="last_failure_at")  # noqa: N815
    lastError = serializers.CharField(allow_null=True, source="last_error")  # noqa: N815
    pending = serializers.IntegerField(help_text="Messages waiting for a first attempt or a retry.")
    failing = serializers.IntegerField(help_text="Pending messages that failed at least once (retries scheduled).")
    failed = serializers.IntegerField(help_text="Messages given up on; POST /settings/webhook/retry redelivers them.")


class WebhookRetrySerializer(serializers.Serializer):
    retried = serializers.IntegerField(help_text="How many messages were rescheduled for delivery now.")


class WebhookStatusSerializer(WebhookHealthSerializer):
    webhookEnabled = serializers.BooleanField()  # noqa: N815
    webhookStatusDetail = serializers.CharField(required=False, help_text="The last delivery error, if any.")  # noqa: N815
    webhookRequestsProcessing = serializers.IntegerField(help_text="Messages still to be delivered.")  # noqa: N815
    webhookRequestsFailed = serializers.IntegerField(help_text="Messages given up on.")  # noqa: N815
