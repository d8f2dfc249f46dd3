"""Webhook outbox (placeholder until the webhooks issue lands; interface is final)."""

from __future__ import annotations


def webhook_message_create(*, customer_id, message_type: str, data: dict, request_id: str | None = None):
    """Stores one outbox message in the caller's transaction and schedules its delivery on commit."""
    return None


def webhook_deliver_due() -> None:
    return None
