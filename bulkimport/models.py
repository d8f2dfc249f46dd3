"""Bulk Patient Create requests, their rows, row errors and apply chunks. The database is the source of truth:
every step of the pipeline can be re-run from what is stored here."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models


class BulkStatus(models.TextChoices):
    WAITING = "waiting"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"


class BulkPhase(models.TextChoices):
    """Where a `processing` request is; lets the sweeper resume the right step."""

    NONE = ""
    PARSING = "parsing"
    APPLYING = "applying"
    # Patients written; waiting for their Document Queries (the medical data) or the request's deadline.
    DOCUMENTS = "documents"
    FINISHING = "finishing"
    DONE = "done"


class BulkRequest(models.Model):
    # The header as read: column labels, or the first patient's cells when a file has no header row.
    PHI_FIELDS: ClassVar = ("header",)
    # A reason and warnings name columns, codes and counts, never cell values; storage keys are made of ids.
    NOT_PHI_FIELDS: ClassVar = (
        "reason",
        "warnings",
        "upload_key",
        "input_key",
        "result_key",
        "invalid_key",
        "absent_key",
        "plan",  # counts per action
        "document_queries_planned",
        "patient_ids",
    )

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey("patients.Customer", on_delete=models.CASCADE, related_name="bulk_requests")
    facility = models.ForeignKey("patients.Facility", on_delete=models.PROTECT, related_name="bulk_requests")
    status = models.CharField(max_length=12, choices=BulkStatus.choices, default=BulkStatus.WAITING)
    phase = models.CharField(max_length=12, choices=BulkPhase.choices, default=BulkPhase.NONE, blank=True)
    dry_run = models.BooleanField(default=False)
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched by every step that makes progress; the sweeper resumes requests whose heartbeat is stale.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When its finish's message was sent, while no worker has begun it (phase `finishing` only): a parse in
    # segments stops for it as for another request's parse (services.parse._another_request_waits).
    finish_sent_at = models.DateTimeField(null=True, blank=True)
    upload_key = models.CharField(max_length=500, blank=True, default="")
    input_key = models.CharField(max_length=500, blank=True, default="")
    input_size = models.BigIntegerField(null=True, blank=True)
    result_key = models.CharField(max_length=500, blank=True, default="")
    invalid_key = models.CharField(max_length=500, blank=True, default="")  # the failed rows only
    warnings = models.JSONField(default=list, blank=True)  # about the file's header, for the customer
    # The input's header as the CSV engine read it: labels of the rows' raw cells and the first columns of
    # the result file, so neither needs the input file again.
    header = models.JSONField(default=list, blank=True)
    total = models.IntegerField(default=0)
    processed = models.IntegerField(default=0)
    successful = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    parse_attempts = models.IntegerField(default=0)
    # A real import made by confirming a dry run (POST .../confirm) points at that dry run; unique, so a
    # dry run is confirmed at most once even by two racing calls.
    confirms = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="confirmation"
    )
    # A confirm's choice for rows whose decision changed since its dry run (OnDrift); blank otherwise.
    on_drift = models.CharField(max_length=5, blank=True, default="", db_default="")
    # The plan, once the request has completed: {"actions": {<camelCase action>: rows}, "absentFromFile": n}.
    # A dict of counts, so more figures (per facility, Document Queries) can join it.
    plan = models.JSONField(default=dict, blank=True, db_default={})
    absent_key = models.CharField(
        max_length=500, blank=True, default="", db_default=""
    )  # the facility's patients no row matched
    # The Document Queries the plan says the request starts (a dry run: its confirm would start; a reprocessed
    # import: the ones its earlier runs started and the ones the reprocess would start), under the budget's
    # rule (docqueries.services.budget); set once planned. An import still applying holds the ones it has not
    # started yet against its customer's daily budget.
    document_queries_planned = models.IntegerField(null=True, blank=True)
    # How the ids of the patients its rows create are derived from (request, row) (services.plan.row_patient_id):
    # 1, uuid5 (requests created before 2026-12-06); 2, ordered by the request's creation and the row. A
    # request keeps its own for good: a reprocess finds the patients its rows created by their ids.
    patient_ids = models.PositiveSmallIntegerField(default=2)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "-created_at"]),
            models.Index(fields=["status", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"Bulk request {self.id}"


class RowStatus(models.TextChoices):
    PENDING = "pending"  # valid, waiting to be applied
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RowAction(models.TextChoices):
    """What a row did (a real import) or would do (a dry run: the plan). A real import's pending rows hold
    their planned action (the `would` words) until they are applied."""

    NONE = "", "-"  # a failed row: nothing was done (the admin shows "-", as for any empty value)
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # matched a patient and would change / changed no stored value
    DUPLICATE = "duplicate"  # the same person as an earlier row of the file (duplicate_of)
    DRIFTED = "drifted"  # a confirm's row whose decision changed since the dry run
    WOULD_CREATE = "would create"
    WOULD_UPDATE = "would update"
    VALIDATED = "validated"  # dry runs before plans existed


class OnDrift(models.TextChoices):
    """What a confirm does with rows whose decision changed since its dry run."""

    APPLY = "apply"  # apply the new decision, report the row `drifted`
    FAIL = "fail"  # fail the row (`drifted`), apply nothing for it


class BulkRow(models.Model):
    # The file's cells, the demographics they give, and the match key made of the names and dob.
    PHI_FIELDS: ClassVar = ("raw", "normalized", "match_key")
    # Error messages and plan notes name columns, codes, row numbers and patient ids, never values.
    NOT_PHI_FIELDS: ClassVar = ("reason", "error_code", "matched_on", "drift")

    # No index of its own: the unique (request, number) index leads with it.
    request = models.ForeignKey(BulkRequest, on_delete=models.CASCADE, related_name="rows", db_index=False)
    number = models.IntegerField()
    raw = models.JSONField()
    normalized = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=RowStatus.choices)
    reason = models.TextField(blank=True, default="")
    # Indexed only where set (bulkrow_patient_idx): a deleted patient's rows are found by it, and a row has
    # none until apply, so parse writes no index entry for it.
    patient = models.ForeignKey(
        "patients.Patient", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    action = models.CharField(max_length=20, choices=RowAction.choices, blank=True, default="")
    error_code = models.CharField(
        max_length=200, blank=True, default="", db_default=""
    )  # the row's error codes, "; "-separated
    # The plan: the row's match key (computed once, at parse), the existing patient it matched and on which
    # fields, the earlier row of the file that is the same person, and for a confirm's row whose decision
    # changed since the dry run, both decisions ({"planned": {...}, "now": {...}}).
    match_key = models.TextField(blank=True, default="", db_default="")
    matched_patient_id = models.UUIDField(null=True, blank=True)
    matched_on = models.CharField(max_length=200, blank=True, default="", db_default="")
    duplicate_of = models.IntegerField(null=True, blank=True)
    drift = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "number"], name="uniq_bulkrow_request_number")]
        indexes = [
            models.Index(fields=["request", "status", "number"]),
            models.Index(fields=["patient"], condition=models.Q(patient__isnull=False), name="bulkrow_patient_idx"),
        ]

    def __str__(self) -> str:
        return f"Row {self.number:,} (spreadsheet line {self.number + 1:,})"


class BulkRowError(models.Model):
    """One validation error of one row; a table of its own so counts and filters by code use an index."""

    NOT_PHI_FIELDS: ClassVar = ("field", "message")  # a column name and a message naming it, never its value

    # No index of its own: both indexes below lead with it.
    request = models.ForeignKey(BulkRequest, on_delete=models.CASCADE, related_name="row_errors", db_index=False)
    row_number = models.IntegerField()
    code = models.CharField(max_length=40)
    field = models.CharField(max_length=60)
    message = models.CharField(max_length=300)

    class Meta:
        indexes = [
            models.Index(fields=["request", "code", "row_number"]),
            models.Index(fields=["request", "row_number"]),
        ]

    def __str__(self) -> str:
        return f"Row {self.row_number:,} (spreadsheet line {self.row_number + 1:,}): {self.code}"


class BulkParseSegment(models.Model):
    """A run of a large file's rows, parsed and stored by the worker that claims it while other workers parse
    the request's other segments (services.parse): rows first_number..last_number, which are the input file's
    bytes [start, end) read after its header's [0, header_end). It belongs to the request's parse lease `token`
    (a restarted parse deletes it); `attempts` and `heartbeat_at` are its own lease (a worker takes a segment
    never taken, released, or whose heartbeat is stale). `enqueued_at`: when workers were last sent to the
    parse (the sweeper waits a stale period before sending more); `invalid`: its invalid rows, once done."""

    # Numbers and byte offsets: `token` is a lease counter, `header_end` where the file's header ends.
    NOT_PHI_FIELDS: ClassVar = ("token", "header_end")

    request = models.ForeignKey(BulkRequest, on_delete=models.CASCADE, related_name="parse_segments")
    index = models.IntegerField()
    token = models.IntegerField()
    first_number = models.IntegerField()
    last_number = models.IntegerField()
    header_end = models.BigIntegerField()
    start = models.BigIntegerField()
    end = models.BigIntegerField()
    attempts = models.IntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    invalid = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "index"], name="uniq_bulkparsesegment_request_index")]

    def __str__(self) -> str:
        return f"Parse segment {self.index} (rows {self.first_number}-{self.last_number})"


class ChunkStatus(models.TextChoices):
    PENDING = "pending"
    DONE = "done"


class BulkChunk(models.Model):
    """A range of row numbers applied in one transaction by one actor message."""

    request = models.ForeignKey(BulkRequest, on_delete=models.CASCADE, related_name="chunks")
    index = models.IntegerField()
    first_number = models.IntegerField()
    last_number = models.IntegerField()
    status = models.CharField(max_length=10, choices=ChunkStatus.choices, default=ChunkStatus.PENDING)
    attempts = models.IntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "index"], name="uniq_bulkchunk_request_index")]
        indexes = [
            models.Index(fields=["status", "enqueued_at"]),
            # The fair pick (services.bulk_chunk_apply_fairest): pending chunks, least progress first.
            models.Index(fields=["index", "id"], condition=models.Q(status="pending"), name="bulkchunk_fair_idx"),
        ]

    def __str__(self) -> str:
        return f"Chunk {self.index} (rows {self.first_number}-{self.last_number})"
