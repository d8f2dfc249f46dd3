"""Signals of Document Queries, for apps that wait on them without docqueries knowing them (a bulk request
waits for its patients' medical data: bulkimport listens)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent on commit when queries started for bulk requests have ended: kwargs `bulk_request_ids` (a set) and
# `latest` (bulk request id -> the id of its query that ended last in id order, which is start order).
document_queries_ended = Signal()
