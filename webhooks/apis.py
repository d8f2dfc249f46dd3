"""Webhook settings endpoints (SPEC §1, §4). Views parse input and call services/selectors."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from patients.authentication import customer_of
from webhooks import selectors, services
from webhooks.serializers import (
    WebhookHealthSerializer,
    WebhookRetrySerializer,
    WebhookSettingsInputSerializer,
    WebhookSettingsSerializer,
    WebhookStatusSerializer,
)


def _settings_data(customer, endpoint) -> dict:
    """Metriport's SettingsResponse: its `id` is the settings' own id, one per customer (ours: the customer's)."""
    return {
        "id": str(customer.id),
        "webhookUrl": (endpoint.url or None) if endpoint else None,
        "webhookKey": endpoint.key if endpoint else None,
    }


class SettingsApi(APIView):
    @extend_schema(responses=WebhookSettingsSerializer, operation_id="settings_get")
    def get(self, request):
        customer = customer_of(request)
        return Response(_settings_data(customer, selectors.webhook_endpoint_get(customer=customer)))

    @extend_schema(
        request=WebhookSettingsInputSerializer,
        responses=WebhookSettingsSerializer,
        operation_id="settings_update",
        description=(
            "Sets the webhook URL (a `ping` webhook is sent first; the receiver must answer "
            '`{"pong": "<same value>"}`) or clears it (empty or null). Generates the webhook key if none.'
        ),
    )
    def post(self, request):
        serializer = WebhookSettingsInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        customer = customer_of(request)
        try:
            endpoint = services.webhook_url_set(customer=customer, url=serializer.validated_data["webhookUrl"])
        except services.WebhookUrlRefused as exc:
            raise exceptions.ValidationError(str(exc)) from exc
        return Response(_settings_data(customer, endpoint))


class WebhookHealthApi(APIView):
    @extend_schema(responses=WebhookStatusSerializer, operation_id="settings_webhook_health")
    def get(self, request):
        health = selectors.webhook_health(customer=customer_of(request))
        # Metriport's WebhookStatusResponse first; `webhookStatusDetail` is an optional string, omitted when empty.
        body: dict = {"webhookEnabled": health.webhook_url is not None}
        if health.last_error:
            body["webhookStatusDetail"] = health.last_error
        body["webhookRequestsProcessing"] = health.pending
        body["webhookRequestsFailed"] = health.failed
        return Response({**body, **WebhookHealthSerializer(health).data})


class WebhookRetryApi(APIView):
    @extend_schema(request=None, responses=WebhookRetrySerializer, operation_id="settings_webhook_retry")
    def post(self, request):
        ids = services.webhook_redeliver(customer_id=customer_of(request).id)
        return Response({"retried": len(ids)})
