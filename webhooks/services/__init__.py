"""Webhooks (SPEC §6), one module per concern: the outbox (messages stored in the caller's transaction),
delivery (claimed, deadline-bound, capped per customer), redelivery, and the customer's endpoint (URL
accepted after a ping, signing key). Callers outside the package import from here."""

from webhooks.services.delivery import (
    customer_concurrency,
    webhook_customer_deliver,
    webhook_customer_wake,
    webhook_deliver_due,
    webhook_message_deliver,
)
from webhooks.services.endpoints import (
    WebhookUrlRefused,
    webhook_endpoint_get_or_create,
    webhook_ping,
    webhook_url_set,
)
from webhooks.services.outbox import webhook_body, webhook_message_create, webhook_messages_create
from webhooks.services.redelivery import webhook_deliver_now, webhook_redeliver

__all__ = [
    "customer_concurrency",
    "WebhookUrlRefused",
    "webhook_body",
    "webhook_deliver_due",
    "webhook_deliver_now",
    "webhook_endpoint_get_or_create",
    "webhook_customer_deliver",
    "webhook_customer_wake",
    "webhook_message_create",
    "webhook_message_deliver",
    "webhook_messages_create",
    "webhook_ping",
    "webhook_redeliver",
    "webhook_url_set",
]
