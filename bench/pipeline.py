"""End-to-end pipeline benchmark on the real stack: PostgreSQL + Redis + SeaweedFS S3, N Dramatiq worker
processes (`manage.py rundramatiq`), the scheduler noticing the upload, 100,000 rows by default.

Prints wall time per phase (upload noticed -> parsed -> applied -> medical data -> completed), rows/s and the
peak RSS of each worker process; `--tenths`, how long each tenth of the Document Queries took to start (the
chunks) and to end; `--gc`, the garbage collections of each worker process by generation (count and time:
bench/gcstats/sitecustomize.py records them).
Usage: .venv/bin/python bench/pipeline.py [--rows 100000] [--processes 2] [--threads 1] [--tenths] [--gc]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from _stack import ROOT, children_of, gc_recorded, gc_recording, peak_rss_mb, running_workers, start_stack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=1, help="per worker process (1: fastest on the CPU-bound bulk queue)"
    )
    parser.add_argument("--invalid-ratio", type=float, default=0.05)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--queues", nargs="*", help="queues the workers consume (default: all)")
    parser.add_argument(
        "--tenths", action="store_true", help="also print how long each tenth of the queries took to start and to end"
    )
    parser.add_argument("--gc", action="store_true", help="also print each worker process's garbage collections")
    args = parser.parse_args()

    env = start_stack("pipeline")
    gc_dir = tempfile.mkdtemp(prefix="bench-gc-") if args.gc else None
    if gc_dir:
        env = gc_recording(env, gc_dir)
    import requests

    from bulkimport import services
    from bulkimport.models import BulkChunk, BulkPhase, BulkRequest, BulkStatus
    from devtools.sample import write_sample_csv
    from devtools.tenants import make_tenant

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "patients.csv")
        with open(path, "wb") as out:
            write_sample_csv(out, args.rows, invalid_ratio=args.invalid_ratio, seed=42)
        size = os.path.getsize(path)
        print(f"file: {args.rows:,} rows, {size / 1e6:.1f} MB, {args.invalid_ratio:.0%} invalid")

        with running_workers(args.processes, args.threads, env, args.queues) as workers_pid:
            tenant = make_tenant("Bench")
            request = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=args.dry_run)
            url = services.bulk_upload_url(request)
            t0 = time.monotonic()
            with open(path, "rb") as body:
                assert requests.put(url, data=body, timeout=120).status_code == 200
            t_uploaded = time.monotonic()
            marks: dict[str, float] = {}
            while True:
                current = BulkRequest.objects.get(id=request.id)
                now = time.monotonic()
                if current.status == BulkStatus.PROCESSING:
                    marks.setdefault("noticed", now)
                if current.parse_attempts:
                    marks.setdefault("parse_started", now)
                if (
                    "parsed" in marks
                    and "chunk_committed" not in marks
                    and BulkChunk.objects.filter(request_id=request.id, attempts__gt=0).exists()
                ):
                    marks["chunk_committed"] = now
                if (
                    current.phase in (BulkPhase.APPLYING, BulkPhase.FINISHING, BulkPhase.DONE)
                    and current.status != BulkStatus.WAITING
                ):
                    marks.setdefault("parsed", now)
                if current.phase in (BulkPhase.DOCUMENTS, BulkPhase.FINISHING, BulkPhase.DONE):
                    marks.setdefault("applied", now)
                if current.phase == BulkPhase.DOCUMENTS:
                    marks.setdefault("waiting", now)
                # The last chunk moves the request to finishing, which moves it to documents while its
                # queries run: the medical data is there when it is finishing again after that (or done).
                if current.phase == BulkPhase.DONE or ("waiting" in marks and current.phase == BulkPhase.FINISHING):
                    marks.setdefault("documents", now)
                if current.status in (BulkStatus.COMPLETED, BulkStatus.FAILED):
                    marks.setdefault("completed", now)
                    break
                time.sleep(0.05)
            rss = {pid: peak_rss_mb(pid) for pid in children_of(workers_pid)}
            recorded = gc_recorded(gc_dir) if gc_dir else {}
            collections = {pid: _by_generation(recorded.get(pid, [])) for pid in rss} if gc_dir else {}
        if gc_dir:
            shutil.rmtree(gc_dir, ignore_errors=True)
        tenths = _tenths(request.id) if args.tenths else []

    end_to_end = marks["completed"] - marks["noticed"]
    print(f"status: {current.status} {current.reason}")
    print(f"rows: total={current.total:,} succeeded={current.successful:,} failed={current.failed:,}")
    print(f"upload PUT:          {t_uploaded - t0:6.2f} s")
    print(f"upload -> noticed:   {marks['noticed'] - t_uploaded:6.2f} s (scheduler polls every 0.5 s)")
    # Waits for an idle worker (DRAMATIQ_WORKER_TIMEOUT): the parse message's, and the first chunk's (its
    # message's wait and its own transaction: a chunk's start is seen when it commits).
    print(f"noticed -> parse started: {marks['parse_started'] - marks['noticed']:.2f} s")
    print(f"parsed -> first chunk committed: {marks.get('chunk_committed', marks['applied']) - marks['parsed']:.2f} s")
    print(f"parse + validate:    {marks['parsed'] - marks['noticed']:6.2f} s")
    print(f"apply (chunks):      {marks['applied'] - marks['parsed']:6.2f} s")
    print(f"medical data (every Document Query ended): {marks['documents'] - marks['applied']:6.2f} s")
    print(f"finish (result CSV): {marks['completed'] - marks['documents']:6.2f} s")
    print(f"noticed -> patients created: {marks['applied'] - marks['noticed']:.2f} s")
    print(f"end to end (noticed -> completed): {end_to_end:.2f} s, {args.rows / end_to_end:,.0f} rows/s")
    print(f"worker processes: {args.processes} x {args.threads} threads")
    for pid, mb in sorted(rss.items()):
        print(f"  worker pid {pid}: peak RSS {mb:.0f} MB")
    for pid, generations in sorted(collections.items()):
        print(
            f"  worker pid {pid}: garbage collections "
            + ", ".join(
                f"generation {g}: {count} in {ms / 1000:.2f} s" for g, (count, ms) in sorted(generations.items())
            )
        )
    for line in tenths:
        print(line)


def _by_generation(collections: list[tuple[int, float]]) -> dict[int, tuple[int, float]]:
    """Generation -> (collections, milliseconds)."""
    totals: dict[int, tuple[int, float]] = {}
    for generation, ms in collections:
        count, total = totals.get(generation, (0, 0.0))
        totals[generation] = (count + 1, total + ms)
    return totals


def _tenths(request_id) -> list[str]:
    """How long each tenth of the request's Document Queries took to start (each chunk starts its rows'
    queries as it applies them: the apply phase's progress) and to end: flat when each costs the same early
    and late in the run, rising when something grows with what is already written."""
    from docqueries.models import DocumentQuery

    queries = DocumentQuery.objects.filter(bulk_request_id=request_id)
    lines = []
    for label, field in (("queries started (chunks applied)", "started_at"), ("queries ended", "finished_at")):
        ordered = sorted(at for at in queries.values_list(field, flat=True) if at is not None)
        if len(ordered) < 10:
            continue
        ends = [ordered[len(ordered) * k // 10 - 1] for k in range(1, 11)]
        spans = [(ends[k] - ends[k - 1]).total_seconds() for k in range(1, 10)]
        lines.append(f"{label}, each tenth after the first (s): " + " ".join(f"{span:.2f}" for span in spans))
    return lines


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "bench"))
    main()
