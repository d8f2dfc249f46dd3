"""Document Queries (SPEC §8): one per applied patient unless opted out, answered by a pluggable backend."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.db.models import Q
from django.utils import timezone


class QueryStatus(models.TextChoices):
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


class DocumentQuery(models.Model):
    """`id` is the requestId the API and the webhook show. While processing, `next_attempt_at` says when the
    next backend call is due (a retry, a poll, the end of a worker's lease); the sweeper resumes queries left
    behind it. Unique per (patient, bulk request): a re-run chunk never starts a second query. Queries started
    outside a bulk request have a null `bulk_request_id`, and NULLs never collide."""

    PHI_FIELDS: ClassVar = ("documents",)  # what documents a patient has (discharge summary, labs) is health data
    NOT_PHI_FIELDS: ClassVar = ("error",)  # the backend's failure, never the patient's data

    id = models.UUIDField("request id", primary_key=True, default=uuid.uuid4, editable=False)
    # No index of their own: docquery_customer_idx leads with the customer, uniq_docquery_patient_bulk with
    # the patient.
    customer = models.ForeignKey(
        "patients.Customer", on_delete=models.CASCADE, related_name="document_queries", db_index=False
    )
    patient = models.ForeignKey(
        "patients.Patient", on_delete=models.CASCADE, related_name="document_queries", db_index=False
    )
    bulk_request_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=QueryStatus.choices, default=QueryStatus.PROCESSING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    documents = models.JSONField(default=list, blank=True)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True, default="")
    # Its message is on the express lane (a bulk request's first chunk, a single patient; sent again to the
    # ordinary lane, it is no more): while its first step is due and not taken, a worker on another request's
    # parse segment stops for it (bulkimport.services.parse).
    express = models.BooleanField(default=False, db_default=False)

    class Meta:
        verbose_name = "Document Query"
        verbose_name_plural = "Document Queries"
        constraints = [
            # Also the index of a patient's queries (their latest, the one processing): a patient has a few.
            models.UniqueConstraint(fields=["patient", "bulk_request_id"], name="uniq_docquery_patient_bulk"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="processing"), name="docquery_due_idx"),
            models.Index(fields=["customer", "-started_at"], name="docquery_customer_idx"),
            # A bulk request waiting for its medical data probes and counts its queries by status.
            models.Index(fields=["bulk_request_id", "status"], name="docquery_bulk_status_idx"),
            # Express queries whose first step waits for a worker (a few thousand at most: a first chunk's).
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="processing", express=True, attempts=0),
                name="docquery_express_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Document Query {self.id} ({self.status})"


class LaneProgress(models.Model):
    """How far the workers have got through one queue of Document Query messages (a lane: `docqueries` or
    `docqueries-express`): `frontier` is the latest time at which a message they began had entered the queue
    (sent, or its delay over), `progress_at` when they last began one. The sweeper tells a lost message from a
    queued one by it (services.lanes)."""

    NOT_PHI_FIELDS: ClassVar = ("lane",)  # a queue's name

    lane = models.CharField(max_length=40, primary_key=True)
    frontier = models.DateTimeField()
    progress_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "lane progress"

    def __str__(self) -> str:
        return f"{self.lane}: reached {self.frontier.isoformat()}"


class RateLimitBucket(models.Model):
    """A token bucket shared by every worker (one row per key, e.g. a customer's gateway calls)."""

    NOT_PHI_FIELDS: ClassVar = ("key", "tokens")  # a limit's name with a customer id; a count

    key = models.CharField(max_length=100, primary_key=True)
    tokens = models.FloatField()
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key}: {self.tokens:.2f} tokens"


class DocumentQueryBudget(models.Model):
    """A customer's Document Query budget (Document Queries are billable): how many one import may start, how
    many may start per UTC day, and how long a patient's last query keeps a bulk import from querying it
    again. No row, or an empty cap, is no limit (docs/document-query-budget.md)."""

    NOT_PHI_FIELDS: ClassVar = ("requery_after_hours",)  # a number of hours

    customer = models.OneToOneField("patients.Customer", on_delete=models.CASCADE, related_name="document_query_budget")
    per_request = models.PositiveIntegerField(
        "at most per import", null=True, blank=True, help_text="Empty: no cap. 0: no import may start a query."
    )
    per_day = models.PositiveIntegerField(
        "at most per UTC day", null=True, blank=True, help_text="Empty: no cap. Counts every query of the day."
    )
    requery_after_hours = models.PositiveIntegerField(
        "re-query after (hours)",
        default=0,
        help_text="A bulk import does not query (nor count) a patient whose last query started within this many "
        "hours. 0: every applied patient is queried.",
    )

    class Meta:
        verbose_name = "Document Query budget"

    def __str__(self) -> str:
        return f"Document Query budget of {self.customer_id}"
