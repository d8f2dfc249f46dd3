"""Webhook endpoint per customer, the outbox of messages and the log of every delivery attempt."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.db.models import Q

from webhooks import types


class WebhookEndpoint(models.Model):
    """A customer's webhook URL and signing key (one per customer). The key survives clearing the URL, so a
    receiver keeps verifying with the same key when the URL is set again."""

    SECRET_FIELDS: ClassVar = ("key",)
    NOT_PHI_FIELDS: ClassVar = ("url", "last_error")

    customer = models.OneToOneField(
        "patients.Customer", primary_key=True, on_delete=models.CASCADE, related_name="webhook_endpoint"
    )
    url = models.CharField("URL", max_length=2000, blank=True, default="")
    key = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")
    # Deliveries the receiver is given at once, adapted to its answers (services.delivery, AIMD): grows while it
    # answers fast, halves when it slows down or fails; null until its first answer (WEBHOOK_INITIAL_CONCURRENCY).
    concurrency = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Webhook endpoint of {self.customer_id}: {self.url or '(no URL)'}"


class MessageStatus(models.TextChoices):
    PENDING = "pending"  # waiting for its first attempt or a retry
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up (retry window over, or no URL); support can redeliver


class WebhookMessage(models.Model):
    """One logical webhook message. `body` is serialized once and sent byte-identical on every attempt; the
    primary key is the payload's meta.messageId."""

    # The payload: demographics' derivatives (external ids), documents' titles and file names, links to files.
    PHI_FIELDS: ClassVar = ("body",)
    NOT_PHI_FIELDS: ClassVar = ("message_type", "last_error")

    id = models.UUIDField("message id", primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: webhookmsg_customer_idx leads with it.
    customer = models.ForeignKey(
        "patients.Customer", on_delete=models.CASCADE, related_name="webhook_messages", db_index=False
    )
    message_type = models.CharField(max_length=60)
    request_id = models.CharField(max_length=64, blank=True, default="")
    # Set by the caller: the lane it is delivered in (a lower one first), and whether it waits for the earlier
    # messages of its request (a status history must arrive in order; independent notices need not).
    lane = models.SmallIntegerField(choices=types.Lane.choices, default=types.Lane.STANDARD)
    ordered = models.BooleanField(default=True)
    body = models.BinaryField(editable=False)
    status = models.CharField(max_length=10, choices=MessageStatus.choices, default=MessageStatus.PENDING)
    attempts = models.IntegerField(default=0)
    # Failed attempts since the message was created or last redelivered by hand: drives the backoff.
    failures = models.IntegerField(default=0)
    # When a pending message is due (its retry time, or the end of a delivery lease); null once final.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    give_up_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="webhookmsg_due_idx"),
            models.Index(fields=["customer", "status", "-created_at"], name="webhookmsg_customer_idx"),
            # Delivery order within a request (services.delivery._in_order) probes, for each due message, for
            # an earlier undelivered one of its request: one index lookup, not a scan of all pending messages.
            models.Index(
                fields=["customer", "request_id", "created_at"],
                condition=Q(status="pending"),
                name="webhookmsg_request_order_idx",
            ),
            # A customer's next due message, lane by lane (delivery takes them in this order): an index range
            # scan, whatever the size of the customer's backlog or of the others'.
            models.Index(
                fields=["customer", "lane", "next_attempt_at"],
                condition=Q(status="pending"),
                name="webhookmsg_lane_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_type} {self.id} ({self.status})"


class DeliveryAttempt(models.Model):
    """One HTTP attempt of one message. `error` never holds PHI: a status code, a timeout, a refusal."""

    NOT_PHI_FIELDS: ClassVar = ("error",)

    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="delivery_attempts")
    number = models.IntegerField()
    started_at = models.DateTimeField()
    succeeded = models.BooleanField(default=False)
    status_code = models.IntegerField(null=True, blank=True)
    latency_ms = models.IntegerField(default=0)
    error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["message", "number"])]
        ordering = ["message", "number"]

    def __str__(self) -> str:
        outcome = "ok" if self.succeeded else (self.error or "failed")
        return f"Attempt {self.number} of {self.message_id}: {outcome}"


class DeliverySlot(models.Model):
    """One of a customer's delivery slots (as many as its adaptive concurrency). A deliverer leases a free slot
    with one conditional UPDATE and keeps it while it delivers the customer's due messages one after the
    other; a lease whose worker died runs out, so a slot is never lost. `queued_at` marks a deliverer queued for
    the slot (not queued twice meanwhile). Works the same on SQLite and PostgreSQL (no broker-side state)."""

    NOT_PHI_FIELDS: ClassVar = ("message_id",)

    customer = models.ForeignKey("patients.Customer", on_delete=models.CASCADE, related_name="webhook_slots")
    number = models.IntegerField()
    message_id = models.UUIDField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "number"], name="webhook_slot_unique")]

    def __str__(self) -> str:
        return f"Webhook slot {self.number} of {self.customer_id}"
