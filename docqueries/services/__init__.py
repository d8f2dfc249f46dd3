"""Document Queries (SPEC §8), one module per step:

- start: record one query per patient (idempotent, in the caller's transaction), dispatched on commit
- run: claim a due query, call the configured backend (retries, polls, per-customer rate limit)
- finish: processing -> completed/failed and the `medical.document-download` webhook
- sweep: the scheduler job that re-dispatches queries whose message was lost
- lanes: how far the workers have got through each queue, which tells a lost message from a queued one
- bulk: what a bulk request asks about its queries
- dispatch: the actor messages, sent on commit in batches
- budget: which applied patients an import queries, and the per-customer caps (Document Queries are billable)

Claiming: a processing query is due when `next_attempt_at` has come. Whoever runs it first takes it with one
conditional UPDATE that moves `next_attempt_at` past a lease (a batch of the sandbox's, on PostgreSQL: row
locks held by the batch's one transaction), so a duplicate actor message, a retry and the sweeper never call
the backend twice for the same step. Actor messages are the fast path (sent on commit,
or delayed for retries and polls); `document_query_sweep` re-dispatches queries whose message was lost.
Callers outside the package import from here.
"""

from docqueries.services.budget import (
    REQUERY_MAX_HOURS,
    Budget,
    Overrun,
    budget_of,
    budget_overrun,
    budget_set,
    import_refusal_reason,
    patients_recently_queried,
    queries_started_today,
    queries_wanted,
)
from docqueries.services.bulk import bulk_queries_open, bulk_queries_started, bulk_query_counts
from docqueries.services.dispatch import DISPATCH_BATCH_SIZE, SET_BATCH_SIZE
from docqueries.services.lanes import document_queries_held_back, express_queries_waiting
from docqueries.services.run import QUERY_DEADLINE, document_queries_run, retry_delay
from docqueries.services.start import document_queries_start, on_patient_written
from docqueries.services.sweep import document_query_sweep

__all__ = [
    "REQUERY_MAX_HOURS",
    "Budget",
    "Overrun",
    "budget_of",
    "budget_overrun",
    "budget_set",
    "import_refusal_reason",
    "patients_recently_queried",
    "queries_started_today",
    "queries_wanted",
    "DISPATCH_BATCH_SIZE",
    "QUERY_DEADLINE",
    "SET_BATCH_SIZE",
    "bulk_queries_open",
    "bulk_queries_started",
    "bulk_query_counts",
    "document_queries_run",
    "document_queries_start",
    "document_queries_held_back",
    "document_query_sweep",
    "express_queries_waiting",
    "on_patient_written",
    "retry_delay",
]
