"""Our pipeline against django-import-export and against the machine's physical floor, on one file.

The file: write_sample_csv (seed fixed, 5% invalid rows by default). The measurements, per size:

- ours: the real pipeline end to end (PostgreSQL + Redis + SeaweedFS S3, `manage.py rundramatiq` worker
  processes, the scheduler thread noticing the S3 upload), timed from upload noticed to completed. Peak
  memory is the VmHWM of every worker process (restarted for each size, so the peak is this run's).
- django-import-export: a ModelResource over the same Patient model doing the same per-row work (our
  RowValidator, i.e. the normalizers of bulkimport/normalize.py, in before_import_row; a match on
  (customer, match_key) sharing a zip in get_instance; create or update the patient; link it to the
  facility), run as Django users run it: tablib loads the CSV, `resource.import_data(dataset, dry_run=False,
  use_transactions=True)` in one process (a child process, so its ru_maxrss is its own).
- the floor: plain `csv` parsing of the file, and PostgreSQL COPY (psycopg3 cursor.copy) of the valid rows,
  already normalized, into an UNLOGGED copy of the patients table (same columns and indexes).
- what the floor leaves out, measured on their own so the gap between ours and the floor can be read:
  validation (our RowValidator over the file, one core, no database), and the state floor: COPY, with nothing
  computed in the timed part, of every row our pipeline keeps (the bulk rows with raw and normalized cells and
  their outcome, the row errors, the patients, their facility links and their Document Queries) into the real,
  logged tables with their indexes and foreign keys, one transaction per 2,000-row chunk as ours commits.
  Deleted again, vacuumed and checkpointed before ours runs, so ours starts from tables as empty as the
  floor's were.

Nothing is hard-coded: every figure printed is measured, except django-import-export at sizes whose
predicted time exceeds --iex-budget, which are extrapolated linearly from the measured sizes and labelled so.

Usage: .venv/bin/python bench/compare.py [--rows 100000] [--sizes 10000,50000,100000]
--sizes also draws bench/out/compare.png (copied to docs/compare.png); it needs matplotlib.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import ROOT, children_of, peak_rss_mb, running_workers, start_stack  # noqa: E402

SEED = 42
IEX_PROBE_ROWS = 10_000
IEX_MARKER = "IEX_RESULT "
# The patient columns the floor COPYs: every column our apply step writes.
PATIENT_COLUMNS = (
    "id", "customer_id", "external_id", "first_name", "last_name", "dob", "gender_at_birth", "ssn",
    "drivers_license", "addresses", "contacts", "match_key", "zips", "created_at", "updated_at",
)  # fmt: skip


@dataclass
class Measure:
    seconds: float
    peak_mb: float | None = None
    extrapolated: bool = False
    detail: dict = field(default_factory=dict)


@dataclass
class SizeResult:
    rows: int
    file_mb: float
    ours: Measure | None = None
    iex: Measure | None = None
    csv_parse: Measure | None = None
    copy: Measure | None = None
    validation: Measure | None = None
    state_copy: Measure | None = None

    @property
    def floor_seconds(self) -> float:
        return self.csv_parse.seconds + self.copy.seconds


# --- the file ---------------------------------------------------------------------------------------------


def write_file(directory: str, rows: int, invalid_ratio: float) -> str:
    from devtools.sample import write_sample_csv

    path = os.path.join(directory, f"patients-{rows}.csv")
    with open(path, "wb") as out:
        write_sample_csv(out, rows, invalid_ratio=invalid_ratio, seed=SEED)
    return path


# --- ours -------------------------------------------------------------------------------------------------


def run_ours(path: str, rows: int, *, processes: int, threads: int, stack_env: dict[str, str]) -> Measure:
    import requests

    from bulkimport import services
    from bulkimport.models import BulkPhase, BulkRequest, BulkStatus
    from devtools.tenants import make_tenant

    _clear_broker()
    tenant = make_tenant(f"Compare ours {rows}")
    request = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    try:
        with running_workers(processes, threads, stack_env) as workers_pid:
            with open(path, "rb") as body:
                response = requests.put(services.bulk_upload_url(request), data=body, timeout=300)
            if response.status_code != 200:
                raise RuntimeError(f"upload failed: HTTP {response.status_code}")
            noticed = applied = None
            while True:
                current = BulkRequest.objects.get(id=request.id)
                now = time.monotonic()
                if noticed is None and current.status != BulkStatus.WAITING:
                    noticed = now
                # Past applying (the last chunk moves the request on): every patient is created.
                if applied is None and current.phase in (BulkPhase.DOCUMENTS, BulkPhase.FINISHING, BulkPhase.DONE):
                    applied = now
                if current.status in (BulkStatus.COMPLETED, BulkStatus.FAILED):
                    break
                time.sleep(0.05)
            worker_peaks = {pid: peak_rss_mb(pid) for pid in children_of(workers_pid)}
    finally:
        # The Document Queries this run started must not load the next run: neither their queued messages
        # nor, through the scheduler's sweep of due queries, the rows themselves.
        _clear_broker()
        _drop_document_queries(request.id)
    if current.status != BulkStatus.COMPLETED:
        raise RuntimeError(f"our pipeline did not complete: {current.status} {current.reason}")
    return Measure(
        seconds=now - noticed,
        peak_mb=max(worker_peaks.values()),
        detail={
            "succeeded": current.successful,
            "failed": current.failed,
            "patients_created_s": (applied or now) - noticed,
            "worker_peaks_mb": sorted(worker_peaks.values()),
        },
    )


def _drop_document_queries(bulk_request_id) -> None:
    from docqueries.models import DocumentQuery

    DocumentQuery.objects.filter(bulk_request_id=bulk_request_id)._raw_delete(DocumentQuery.objects.db)


def _clear_broker() -> None:
    """Deletes every key of this run's Dramatiq namespace: queued messages of all queues (flush_all only
    knows the queues this process declared), delayed ones, acks and heartbeats of killed workers."""
    import dramatiq
    from django.conf import settings

    client = dramatiq.get_broker().client
    for key in client.scan_iter(f"{settings.DRAMATIQ_NAMESPACE}:*", count=1000):
        client.delete(key)


# --- django-import-export ---------------------------------------------------------------------------------


def tablib_refuses_file(path: str) -> bool:
    """Whether tablib's CSV loader, as import-export's admin uses it, refuses the file (ragged rows)."""
    import tablib

    with open(path, encoding="utf-8-sig", newline="") as handle:
        try:
            tablib.Dataset().load(handle.read(), format="csv")
        except tablib.InvalidDimensions:
            return True
    return False


def run_iex(path: str, rows: int, *, timeout: float) -> Measure | None:
    """Runs the import in a child process (its own ru_maxrss); None when it exceeds `timeout`."""
    command = [sys.executable, str(Path(__file__).resolve()), "--iex-child", path, "--rows", str(rows)]
    try:
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None
    lines = [line for line in completed.stdout.splitlines() if line.startswith(IEX_MARKER)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"django-import-export child failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
        )
    data = json.loads(lines[-1][len(IEX_MARKER) :])
    data["tablib_refuses_file"] = tablib_refuses_file(path)
    return Measure(seconds=data["total_s"], peak_mb=data["maxrss_mb"], detail=data)


def iex_child(path: str, rows: int) -> None:
    """The django-import-export run (in its own process): load with tablib, import_data, report JSON."""
    import django

    django.setup()
    import tablib
    from django.core.exceptions import ValidationError
    from import_export import fields, resources, widgets

    from bulkimport.validation import row_reason
    from devtools.tenants import make_tenant
    from patients.columns import patient_fields as _patient_fields  # the same patient fields our apply step writes
    from patients.header import build_column_plan
    from patients.matching import shares_zip
    from patients.models import Patient, PatientFacility
    from patients.validation import RowValidator

    tenant = make_tenant(f"Compare import-export {rows}")
    plain = widgets.Widget()  # values arrive already normalized (lists and dicts for the JSON columns)

    class PatientResource(resources.ModelResource):
        external_id = fields.Field(attribute="external_id", column_name="_external_id", widget=plain)
        first_name = fields.Field(attribute="first_name", column_name="_first_name", widget=plain)
        last_name = fields.Field(attribute="last_name", column_name="_last_name", widget=plain)
        dob = fields.Field(attribute="dob", column_name="_dob", widget=widgets.DateWidget("%Y-%m-%d"))
        gender_at_birth = fields.Field(attribute="gender_at_birth", column_name="_gender_at_birth", widget=plain)
        ssn = fields.Field(attribute="ssn", column_name="_ssn", widget=plain)
        drivers_license = fields.Field(attribute="drivers_license", column_name="_drivers_license", widget=plain)
        addresses = fields.Field(attribute="addresses", column_name="_addresses", widget=plain)
        contacts = fields.Field(attribute="contacts", column_name="_contacts", widget=plain)
        zips = fields.Field(attribute="zips", column_name="_zips", widget=plain)
        match_key = fields.Field(attribute="match_key", column_name="_match_key", widget=plain)

        class Meta:
            model = Patient
            fields = (
                "external_id", "first_name", "last_name", "dob", "gender_at_birth", "ssn", "drivers_license",
                "addresses", "contacts", "zips", "match_key",
            )  # fmt: skip
            # The documented speed-up: no per-row deepcopy and diff (nobody looks at a diff of 100k rows).
            skip_diff = True

        def __init__(self, *, customer_id, facility_id, header: list[str]) -> None:
            super().__init__()
            self.customer_id = customer_id
            self.facility_id = facility_id
            self.validator = RowValidator(build_column_plan(header), today=datetime.date.today())

        def before_import_row(self, row, **kwargs) -> None:
            normalized, errors = self.validator.validate(list(row.values()))
            if errors:
                raise ValidationError(row_reason(errors))
            for name, value in _patient_fields(normalized).items():
                row[f"_{name}"] = value

        def get_instance(self, instance_loader, row):
            candidates = Patient.objects.filter(customer_id=self.customer_id, match_key=row["_match_key"])
            return next((p for p in candidates.order_by("created_at", "id") if shares_zip(p.zips, row["_zips"])), None)

        def before_save_instance(self, instance, row, **kwargs) -> None:
            instance.customer_id = self.customer_id

        def after_save_instance(self, instance, row, **kwargs) -> None:
            PatientFacility.objects.get_or_create(patient=instance, facility_id=self.facility_id)

    # Loaded row by row (never the whole text at once, which would only add to its peak memory): ragged rows
    # are cut to the header's width, since tablib refuses them (see tablib_refuses_file).
    started = time.monotonic()
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        width = len(header)
        ragged = 0
        dataset = tablib.Dataset(headers=header)
        for cells in reader:
            if len(cells) != width:
                ragged += 1
                cells = (cells + [""] * width)[:width]
            dataset.append(cells)
    loaded = time.monotonic()
    patient_resource = PatientResource(customer_id=tenant.customer.id, facility_id=tenant.facility.id, header=header)
    result = patient_resource.import_data(dataset, dry_run=False, use_transactions=True)
    finished = time.monotonic()

    totals = dict(result.totals)
    report = {
        "rows": len(dataset),
        "load_s": loaded - started,
        "import_s": finished - loaded,
        "total_s": finished - started,
        "created": totals.get("new", 0),
        "updated": totals.get("update", 0),
        "invalid": totals.get("invalid", 0),
        "errors": totals.get("error", 0),
        "ragged_rows_fitted": ragged,
        "patients_in_db": Patient.objects.filter(customer_id=tenant.customer.id).count(),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(IEX_MARKER + json.dumps(report), flush=True)


# --- the floor --------------------------------------------------------------------------------------------


def run_csv_parse(path: str) -> Measure:
    started = time.monotonic()
    count = 0
    with open(path, encoding="utf-8", newline="") as handle:
        for _ in csv.reader(handle):
            count += 1
    return Measure(seconds=time.monotonic() - started, detail={"lines": count})


def run_copy(path: str) -> Measure:
    """COPY of the file's valid rows, normalized beforehand (untimed), into an UNLOGGED patients table."""
    import psycopg
    from django.utils import timezone

    from bulkimport.validation import CsvImport
    from devtools.tenants import make_tenant
    from patients.columns import patient_fields as _patient_fields
    from patients.models import Patient

    customer_id = make_tenant("Compare floor").customer.id
    now = timezone.now()
    json_columns = {"drivers_license", "addresses", "contacts", "zips"}
    prepared: list[tuple] = []
    with open(path, "rb") as stream:
        for row in CsvImport(stream, max_rows=10**9, max_bytes=1 << 40).rows():
            if not row.valid:
                continue
            fields = _patient_fields(row.normalized)
            values = [
                json.dumps(fields[name], separators=(",", ":")) if name in json_columns else fields[name]
                for name in PATIENT_COLUMNS[2:13]
            ]
            prepared.append((uuid.uuid4(), customer_id, *values, now, now))

    table = Patient._meta.db_table
    floor = f"bench_floor_{uuid.uuid4().hex[:8]}"
    columns = ", ".join(PATIENT_COLUMNS)
    with psycopg.connect(os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)) as conn:
        conn.execute(f"CREATE UNLOGGED TABLE {floor} (LIKE {table} INCLUDING DEFAULTS INCLUDING INDEXES)")
        conn.commit()
        try:
            started = time.monotonic()
            with conn.cursor() as cursor, cursor.copy(f"COPY {floor} ({columns}) FROM STDIN") as copy:
                for values in prepared:
                    copy.write_row(values)
            conn.commit()
            seconds = time.monotonic() - started
            copied = conn.execute(f"SELECT count(*) FROM {floor}").fetchone()[0]
        finally:
            conn.rollback()
            conn.execute(f"DROP TABLE IF EXISTS {floor}")
            conn.commit()
    return Measure(seconds=seconds, detail={"rows": copied})


# --- what the floor leaves out ----------------------------------------------------------------------------


def run_validation(path: str) -> Measure:
    """Our CSV engine and RowValidator over the file, in this process, no database: one core's work."""
    from bulkimport.validation import CsvImport

    started = time.monotonic()
    invalid = 0
    with open(path, "rb") as stream:
        for row in CsvImport(stream, max_rows=10**9, max_bytes=1 << 40).rows():
            invalid += not row.valid
    return Measure(seconds=time.monotonic() - started, detail={"invalid": invalid})


STATE_CHUNK_ROWS = 2_000


def run_state_copy(path: str) -> Measure:
    """COPY of the state our pipeline keeps for the file into the real tables, everything prepared beforehand
    (untimed): per 2,000-row chunk, one transaction (synchronous_commit off, as ours) with the chunk's bulk rows
    (final status and patient), row errors, patients, facility links and Document Queries. One connection, as
    one worker thread would."""
    import psycopg
    from django.utils import timezone

    from bulkimport.models import BulkRequest, BulkRow, BulkRowError
    from bulkimport.validation import CsvImport
    from devtools.tenants import make_tenant
    from docqueries.models import DocumentQuery
    from patients.columns import patient_fields as _patient_fields
    from patients.models import Patient, PatientFacility

    tenant = make_tenant("Compare state floor")
    request = BulkRequest.objects.create(customer=tenant.customer, facility=tenant.facility, status="processing")
    customer_id, facility_id = tenant.customer.id, tenant.facility.id
    now = timezone.now()

    def dumps(value) -> str:
        return json.dumps(value, separators=(",", ":"))

    json_columns = {"drivers_license", "addresses", "contacts", "zips"}
    chunks: list[dict[str, list[tuple]]] = []
    with open(path, "rb") as stream:
        for row in CsvImport(stream, max_rows=10**9, max_bytes=1 << 40).rows():
            if (row.number - 1) % STATE_CHUNK_ROWS == 0:
                chunks.append({"rows": [], "errors": [], "patients": [], "links": [], "queries": []})
            chunk = chunks[-1]
            reason = "; ".join(e.message for e in row.errors)
            patient_id = None
            if row.valid:
                patient_id = uuid.uuid4()
                fields = _patient_fields(row.normalized)
                values = [dumps(fields[n]) if n in json_columns else fields[n] for n in PATIENT_COLUMNS[2:13]]
                chunk["patients"].append((patient_id, customer_id, *values, now, now))
                chunk["links"].append((patient_id, facility_id, now))
                chunk["queries"].append(
                    (uuid.uuid4(), customer_id, patient_id, request.id, "processing", now, "[]", 0, now, "")
                )
            for error in row.errors:
                chunk["errors"].append((request.id, row.number, str(error.code), error.field[:60], error.message[:300]))
            chunk["rows"].append(
                (
                    request.id, row.number, dumps(row.raw), dumps(row.normalized) if row.normalized else None,
                    "succeeded" if row.valid else "failed", reason, "created" if row.valid else "", patient_id,
                )
            )  # fmt: skip

    tables = {
        "patients": (Patient._meta.db_table, ", ".join(PATIENT_COLUMNS)),
        "links": (PatientFacility._meta.db_table, "patient_id, facility_id, created_at"),
        "queries": (
            DocumentQuery._meta.db_table,
            "id, customer_id, patient_id, bulk_request_id, status, started_at, documents, attempts, next_attempt_at, error",
        ),
        "rows": (BulkRow._meta.db_table, "request_id, number, raw, normalized, status, reason, action, patient_id"),
        "errors": (BulkRowError._meta.db_table, "request_id, row_number, code, field, message"),
    }
    with psycopg.connect(os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)) as conn:
        conn.execute("SET synchronous_commit TO OFF")  # as our chunk transactions (bulkdb.relax_commit)
        conn.commit()
        per_table = dict.fromkeys([*tables, "commit"], 0.0)
        started = time.monotonic()
        for chunk in chunks:
            with conn.cursor() as cursor:
                for kind, (table, columns) in tables.items():  # patients first: the others reference them
                    table_started = time.monotonic()
                    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                        for values in chunk[kind]:
                            copy.write_row(values)
                    per_table[kind] += time.monotonic() - table_started
            commit_started = time.monotonic()
            conn.commit()  # the deferred foreign-key checks run here
            per_table["commit"] += time.monotonic() - commit_started
        seconds = time.monotonic() - started
        # Gone again before our pipeline runs: its workers would otherwise run these Document Queries.
        patients = [row[0] for chunk in chunks for row in chunk["patients"]]
        conn.execute(f"DELETE FROM {tables['queries'][0]} WHERE bulk_request_id = %s", [request.id])
        conn.execute(f"DELETE FROM {tables['links'][0]} WHERE patient_id = ANY(%s)", [patients])
        conn.execute(f"DELETE FROM {tables['errors'][0]} WHERE request_id = %s", [request.id])
        conn.execute(f"DELETE FROM {tables['rows'][0]} WHERE request_id = %s", [request.id])
        conn.execute(f"DELETE FROM {tables['patients'][0]} WHERE customer_id = %s", [customer_id])
        conn.execute(f"DELETE FROM {BulkRequest._meta.db_table} WHERE id = %s", [request.id])
        conn.commit()
        # Ours runs next in this database, and the floor ran in a fresh one: without this, ours would find a
        # dead tuple of the floor's in every table and index for each row it writes, autovacuum busy with
        # them, and the floor's pages still to be written out. Measured against the same bench without it,
        # the difference was within the machine's drift (docs/benchmarks.md, sixteenth session); it makes
        # the two start alike.
        conn.autocommit = True
        for table in [*(table for table, _ in tables.values()), BulkRequest._meta.db_table]:
            conn.execute(f"VACUUM (ANALYZE) {table}")
        conn.execute("CHECKPOINT")
    counts = {kind: sum(len(chunk[kind]) for chunk in chunks) for kind in tables}
    return Measure(seconds=seconds, detail={"counts": counts, "seconds": per_table})


# --- extrapolation ----------------------------------------------------------------------------------------


def linear_fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(intercept, slope) of seconds against rows: least squares, or through the origin for one point."""
    if len(points) == 1:
        rows, seconds = points[0]
        return 0.0, seconds / rows
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return mean_y - slope * mean_x, slope


def predict(points: list[tuple[int, float]], rows: int) -> float:
    intercept, slope = linear_fit(points)
    return intercept + slope * rows


# --- report -----------------------------------------------------------------------------------------------


def rate(rows: int, seconds: float) -> str:
    return f"{rows / seconds:>9,.0f}"


def print_size(result: SizeResult) -> None:
    rows = result.rows
    print(f"\n== {rows:,} rows ({result.file_mb:.1f} MB) ==")
    print(f"{'':34} {'seconds':>9} {'rows/s':>9} {'peak RSS':>10}")
    ours, iex = result.ours, result.iex
    print(
        f"{'ours (pipeline, noticed->completed)':34} {ours.seconds:9.2f} {rate(rows, ours.seconds)} "
        f"{ours.peak_mb:8.0f} MB  (max of {len(ours.detail['worker_peaks_mb'])} worker processes: "
        f"{', '.join(f'{mb:.0f}' for mb in ours.detail['worker_peaks_mb'])} MB)"
    )
    if iex is None:
        print(f"{'django-import-export':34} {'not run (--skip-iex)':>9}")
    elif iex.extrapolated:
        print(
            f"{'django-import-export':34} {iex.seconds:9.2f} {rate(rows, iex.seconds)} {'n/a':>10}  EXTRAPOLATED, not run"
        )
    else:
        d = iex.detail
        print(
            f"{'django-import-export':34} {iex.seconds:9.2f} {rate(rows, iex.seconds)} {iex.peak_mb:8.0f} MB  "
            f"(tablib load {d['load_s']:.2f} s + import_data {d['import_s']:.2f} s, one process)"
        )
    print(f"{'floor: csv parse':34} {result.csv_parse.seconds:9.2f} {rate(rows, result.csv_parse.seconds)}")
    print(
        f"{'floor: COPY into UNLOGGED table':34} {result.copy.seconds:9.2f} {rate(result.copy.detail['rows'], result.copy.seconds)}  ({result.copy.detail['rows']:,} valid rows)"
    )
    print(f"{'floor: total':34} {result.floor_seconds:9.2f} {rate(rows, result.floor_seconds)}")
    print(
        f"{'left out: validation (one core)':34} {result.validation.seconds:9.2f} {rate(rows, result.validation.seconds)}"
    )
    state = result.state_copy
    print(
        f"{'left out: COPY of the kept state':34} {state.seconds:9.2f} {rate(rows, state.seconds)}  "
        f"(logged tables, indexes, foreign keys)"
    )
    for kind, n in state.detail["counts"].items():
        print(f"{'':4}{n:>9,} {kind:<30} {state.detail['seconds'][kind]:9.2f}")
    print(f"{'':4}{'':>9} {'commits (foreign-key checks)':<30} {state.detail['seconds']['commit']:9.2f}")
    work = result.csv_parse.seconds + result.validation.seconds + state.seconds
    print(f"{'csv parse + validation + state COPY':34} {work:9.2f} {rate(rows, work)}  (one core, nothing overlapped)")
    created = ours.detail["patients_created_s"]
    print(
        f"ours, noticed -> patients created: {created:.2f} s = {created / state.seconds:.2f}x the state floor "
        f"(COPY of the kept state, {state.seconds:.2f} s)"
    )
    print(f"ours: {ours.detail['succeeded']:,} succeeded, {ours.detail['failed']:,} failed")
    if iex is not None and not iex.extrapolated:
        d = iex.detail
        print(
            f"import-export: {d['created']:,} created, {d['updated']:,} updated, {d['invalid']:,} invalid, "
            f"{d['errors']:,} errors; {d['patients_in_db']:,} patients in the database"
        )
        if d["tablib_refuses_file"]:
            print(
                f"  note: tablib refuses this file as is (InvalidDimensions on ragged rows): import-export cannot "
                f"import it unaided; its {d['ragged_rows_fitted']} ragged rows were cut to the header width "
                f"before loading (ours reports them as failed rows)."
            )
    if iex is not None:
        label = "import-export / ours (extrapolated)" if iex.extrapolated else "import-export / ours"
        print(f"ratio {label}: {iex.seconds / ours.seconds:.1f}x")
    print(
        f"ours / floor: {ours.seconds / result.floor_seconds:.1f}x; "
        f"ours / (csv parse + validation + state COPY): {ours.seconds / work:.1f}x"
    )


def plot(results: list[SizeResult], out_dir: Path, *, processes: int, threads: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = [r.rows for r in results]
    figure, axes = plt.subplots(figsize=(8, 5), dpi=120)
    axes.plot(
        rows,
        [r.ours.seconds for r in results],
        "o-",
        label=f"ours: pipeline end to end ({processes} workers x {threads} threads)",
    )
    measured = [r for r in results if not r.iex.extrapolated]
    extrapolated = [r for r in results if r.iex.extrapolated]
    axes.plot(
        [r.rows for r in measured],
        [r.iex.seconds for r in measured],
        "s-",
        color="tab:red",
        label="django-import-export (measured)",
    )
    if extrapolated:
        last = measured[-1:] + extrapolated
        axes.plot(
            [r.rows for r in last], [r.iex.seconds for r in last], "s--", color="tab:red", mfc="none",
            label="django-import-export (extrapolated, not run)",
        )  # fmt: skip
    axes.plot(
        rows, [r.floor_seconds for r in results], "^-", color="tab:green", label="floor: csv parse + COPY (unlogged)"
    )
    axes.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    axes.set_xlabel("rows in the file")
    axes.set_ylabel("seconds")
    axes.set_title("Bulk patient import time against rows (5% invalid rows)")
    axes.grid(True, alpha=0.3)
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.legend()
    figure.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "compare.png"
    figure.savefig(path)
    plt.close(figure)
    return path


# --- main -------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sizes", help="comma-separated row counts; also draws the plot")
    parser.add_argument("--invalid-ratio", type=float, default=0.05)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=1, help="per worker process (1: fastest on the CPU-bound bulk queue)"
    )
    parser.add_argument("--iex-budget", type=float, default=600, help="seconds; above it import-export is extrapolated")
    parser.add_argument(
        "--skip-iex", action="store_true", help="measure ours and the floors only (no django-import-export, no plot)"
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "out"))
    parser.add_argument("--iex-child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.iex_child:
        iex_child(args.iex_child, args.rows)
        return

    sizes = sorted({int(s) for s in args.sizes.split(",")}) if args.sizes else [args.rows]
    if args.sizes and args.skip_iex:
        raise SystemExit("--sizes draws import-export's curve: it cannot go with --skip-iex")
    if args.sizes:
        import matplotlib  # noqa: F401 - fail now, not after twenty minutes of measuring

    stack_env = start_stack("compare")
    print(f"machine: {os.cpu_count()} cores; seed {SEED}; {args.invalid_ratio:.0%} invalid rows; "
          f"ours with {args.processes} worker processes x {args.threads} threads")  # fmt: skip

    results: list[SizeResult] = []
    iex_points: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if sizes[0] > IEX_PROBE_ROWS and not args.skip_iex:
            # A first measurement to predict the big run from (and to skip it when it would take too long).
            probe = run_iex(
                write_file(tmp, IEX_PROBE_ROWS, args.invalid_ratio), IEX_PROBE_ROWS, timeout=args.iex_budget
            )
            if probe is not None:
                iex_points.append((IEX_PROBE_ROWS, probe.seconds))
                print(f"import-export probe: {IEX_PROBE_ROWS:,} rows in {probe.seconds:.1f} s")
        for rows in sizes:
            path = write_file(tmp, rows, args.invalid_ratio)
            result = SizeResult(rows=rows, file_mb=os.path.getsize(path) / 1e6)
            print(f"\n{rows:,} rows: floor...", flush=True)
            result.csv_parse = run_csv_parse(path)
            result.copy = run_copy(path)
            result.validation = run_validation(path)
            result.state_copy = run_state_copy(path)
            if not args.skip_iex:
                predicted = predict(iex_points, rows) if iex_points else None
                iex = None
                if predicted is None or predicted <= args.iex_budget:
                    print(f"{rows:,} rows: django-import-export...", flush=True)
                    iex = run_iex(path, rows, timeout=max(args.iex_budget, 2 * (predicted or 0)))
                if iex is None:
                    if not iex_points:
                        raise SystemExit(
                            f"django-import-export exceeded {args.iex_budget:.0f} s at {rows:,} rows with nothing to extrapolate from"
                        )
                    iex = Measure(seconds=predict(iex_points, rows), extrapolated=True)
                else:
                    iex_points = [p for p in iex_points if p[0] != rows] + [(rows, iex.seconds)]
                result.iex = iex
            print(f"{rows:,} rows: ours...", flush=True)
            result.ours = run_ours(path, rows, processes=args.processes, threads=args.threads, stack_env=stack_env)
            results.append(result)
            print_size(result)

    final = results[-1]
    print("\n== summary ==")
    for r in results:
        if r.iex is None:
            iex = "import-export not run"
        else:
            mark = " (extrapolated)" if r.iex.extrapolated else ""
            iex = f"import-export {r.iex.seconds:7.1f} s{mark} ({r.iex.seconds / r.ours.seconds:5.1f}x ours)"
        created = r.ours.detail["patients_created_s"]
        print(
            f"{r.rows:>9,} rows: ours {r.ours.seconds:7.1f} s | {iex} | "
            f"floor {r.floor_seconds:5.1f} s | validation {r.validation.seconds:5.1f} s | "
            f"state COPY {r.state_copy.seconds:5.1f} s | ours/floor {r.ours.seconds / r.floor_seconds:5.1f}x | "
            f"noticed -> patients created {created:5.1f} s = {created / r.state_copy.seconds:4.2f}x the state COPY"
        )
    if final.iex is not None and final.iex.extrapolated:
        measured = ", ".join(f"{n:,}" for n, _ in sorted(iex_points))
        print(
            f"django-import-export was NOT run at {final.rows:,} rows: predicted above the {args.iex_budget:.0f} s budget; "
            f"its time there is a linear extrapolation from the runs at {measured} rows."
        )
    if args.sizes:
        path = plot(results, Path(args.out), processes=args.processes, threads=args.threads)
        docs = ROOT / "docs" / "compare.png"
        docs.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, docs)
        print(f"plot: {path} (copied to {docs})")


if __name__ == "__main__":
    main()
