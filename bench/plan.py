"""The plan's cost (issue 22), on PostgreSQL + SeaweedFS, every step run inline in this process:

- a dry run with its plan (would create/update, unchanged, duplicate; the plan summary and the absent file)
  against the validate-only dry run from before plans (the plan steps switched off: rows marked `validated`,
  no match key stored, no summary), target 1.3x;
- a confirm of a dry run (its plan compared with the dry run's, row by row, then applied) against a direct
  real import of the same file, target 1.2x.

The variants alternate in one run (A B A B ...), each on a fresh customer so every run meets the same empty
patient table; timed from the file stored to the rows done (a dry run: parse and finish; an import: parse
and every chunk applied, the Document Queries' answers left out). Peak memory: this process's high-water
mark after a small warm-up run and after all runs (flat: rows are streamed in batches).

    .venv/bin/python bench/plan.py --rows 100000 --rounds 2
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from _stack import start_stack


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def validate_only() -> Iterator[None]:
    """The dry run as it was before plans: rows validated only."""
    from bulkimport.models import BulkRow, RowAction, RowStatus
    from bulkimport.services import finish, parse

    def mark_validated(*, request_id) -> None:
        BulkRow.objects.filter(request_id=request_id, status=RowStatus.PENDING).update(
            status=RowStatus.SUCCEEDED, action=RowAction.VALIDATED
        )

    # The plan's steps in parse and finish, switched off (setattr: names parse imports, not exports).
    off: list[tuple[object, str, object]] = [
        (parse, "bulk_request_plan", lambda **kwargs: None),
        (parse, "plan_dry_run_rest", mark_validated),
        (parse, "row_match_key", lambda normalized: ""),
        (finish, "write_plan", lambda request: ({}, "")),
    ]
    saved = [(module, name, getattr(module, name)) for module, name, _ in off]
    for module, name, replacement in off:
        setattr(module, name, replacement)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    start_stack("plan")

    from bulkimport import services
    from bulkimport.models import BulkChunk, BulkRequest
    from devtools.sample import write_sample_csv
    from devtools.tenants import make_tenant

    def sample(rows: int) -> bytes:
        out = io.BytesIO()
        write_sample_csv(out, rows, invalid_ratio=0.05, seed=42)
        return out.getvalue()

    body = sample(args.rows)
    counter = iter(range(1, 10_000))

    def submitted(dry_run: bool):
        tenant = make_tenant(f"bench {next(counter)}")
        request = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=dry_run)
        services.bulk_request_submit_file(request=request, stream=io.BytesIO(body), size=len(body))
        return tenant, request

    def dry_run(request) -> float:
        started = time.perf_counter()
        services.bulk_request_parse(request_id=request.id)
        services.bulk_request_finish(request_id=request.id)
        seconds = time.perf_counter() - started
        assert BulkRequest.objects.get(id=request.id).status == "completed"
        return seconds

    def imported(request) -> float:
        started = time.perf_counter()
        services.bulk_request_parse(request_id=request.id)
        for chunk_id in BulkChunk.objects.filter(request_id=request.id).order_by("index").values_list("id", flat=True):
            services.bulk_chunk_apply(chunk_id=chunk_id)
        seconds = time.perf_counter() - started
        assert BulkRequest.objects.get(id=request.id).phase in ("finishing", "documents")
        return seconds

    def baseline_dry() -> float:
        with validate_only():
            return dry_run(submitted(True)[1])

    def planned_dry() -> float:
        return dry_run(submitted(True)[1])

    def direct_import() -> float:
        return imported(submitted(False)[1])

    def confirmed_import() -> float:
        tenant, dry = submitted(True)
        dry_run(dry)
        dry.refresh_from_db()
        return imported(services.bulk_request_confirm(customer=tenant.customer, request=dry))

    # Warm-up (imports, caches) and the memory reference: a tenth of the file.
    small = body
    body = sample(max(args.rows // 10, 1_000))
    planned_dry()
    warm_peak = peak_mb()
    body = small

    def alternate(pairs: list[tuple[str, Callable[[], float]]]) -> dict[str, list[float]]:
        times: dict[str, list[float]] = {name: [] for name, _ in pairs}
        for _ in range(args.rounds):
            for name, run in pairs:
                seconds = run()
                times[name].append(seconds)
                print(f"  {name}: {seconds:.2f}s", flush=True)
        return times

    print(f"{args.rows:,} rows, {args.rounds} round(s), variants alternating")
    dry = alternate([("validate-only dry run", baseline_dry), ("dry run with plan", planned_dry)])
    real = alternate([("direct import", direct_import), ("confirm of a dry run", confirmed_import)])
    dry_ratio = statistics.median(dry["dry run with plan"]) / statistics.median(dry["validate-only dry run"])
    real_ratio = statistics.median(real["confirm of a dry run"]) / statistics.median(real["direct import"])
    for name, values in (*dry.items(), *real.items()):
        rate = args.rows / statistics.median(values)
        print(f"{name:24s} median {statistics.median(values):6.2f}s ({rate:,.0f} rows/s)")
    print(f"dry run with plan / validate-only dry run: {dry_ratio:.2f}x (target 1.3x)")
    print(f"confirm / direct import:                   {real_ratio:.2f}x (target 1.2x)")
    print(f"peak RSS: {warm_peak:.0f} MB after a {args.rows // 10:,}-row run, {peak_mb():.0f} MB after all runs")


if __name__ == "__main__":
    main()
