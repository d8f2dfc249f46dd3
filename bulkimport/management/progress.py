"""Waits for a bulk request to finish, with a progress bar (shared by the demo and bulk_create commands)."""

from __future__ import annotations

import time

from tqdm import tqdm

from bulkimport.models import BulkPhase, BulkRequest, BulkStatus

FINAL = {BulkStatus.COMPLETED, BulkStatus.FAILED, BulkStatus.EXPIRED}


def wait_with_progress(request_id, *, timeout: float = 3600, stream=None) -> BulkRequest:
    deadline = time.monotonic() + timeout
    bar = tqdm(total=0, unit="rows", desc="processing", file=stream, dynamic_ncols=True)
    try:
        while True:
            request = BulkRequest.objects.get(id=request_id)
            if request.total and bar.total != request.total:
                bar.total = request.total
            bar.n = request.processed
            postfix = f"{request.status}/{request.phase or '-'} ok={request.successful} failed={request.failed}"
            if request.phase == BulkPhase.DOCUMENTS:
                # The patients exist; completion waits for their medical data (SPEC §2).
                from docqueries.services import bulk_query_counts

                counts = bulk_query_counts(bulk_request_id=request.id)
                postfix += f" medical data: {counts['completed'] + counts['failed']}/{counts['total']} queries ended"
            bar.set_postfix_str(postfix)
            bar.refresh()
            if request.status in FINAL:
                return request
            if time.monotonic() > deadline:
                raise TimeoutError(f"bulk request {request_id} did not finish in {timeout:.0f}s")
            time.sleep(0.25)
    finally:
        bar.close()


def summary_lines(request: BulkRequest) -> list[str]:
    duration = (
        (request.finished_at - request.started_at).total_seconds()
        if request.finished_at and request.started_at
        else None
    )
    lines = [
        f"request:    {request.id}",
        f"status:     {request.status}" + (f" ({request.reason})" if request.reason else ""),
        f"dry run:    {request.dry_run}",
        f"rows:       {request.total} total, {request.successful} succeeded, {request.failed} failed",
    ]
    if duration is not None:
        rate = f", {request.total / duration:,.0f} rows/s" if duration > 0 and request.total else ""
        lines.append(f"duration:   {duration:.1f} s{rate}")
    return lines
