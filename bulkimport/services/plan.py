"""The plan (SPEC §13, issue 22): each valid row's action decided against the patients as they are, before
anything is written. A dry run shows it (`would create`, `would update`, `unchanged`, `duplicate`); a real
import decides it the same way and then applies it (services.apply); a confirm compares it with the plan of
its dry run and reports the rows whose decision changed meanwhile (`drifted`).

The decision of a row, in row order (the same rule apply follows, so a plan is what an import does):
- `duplicate` of an earlier row when an earlier row of the file is the same person: the same match key and a
  shared zip (with any of that person's rows so far), or the same matched patient;
- else `would update` (or `unchanged`, when writing the row would change no stored value) the customer's
  oldest patient with the row's match key and a shared zip;
- else `would create`.

Rows are read in batches in row order (streaming, never the whole file); only the match keys that occur in
more than one row of the file (found by one GROUP BY) keep a state across batches, so memory grows with the
file's duplicates, not with its rows. A row's addresses are read only when its key is one of those or a
patient's: any other row would create its patient (a roster's first import reads no addresses at all)."""

from __future__ import annotations

import datetime
import functools
import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.db.models.fields.json import KT

from bulkimport.models import BulkRequest, BulkRow, BulkRowError, OnDrift, RowAction, RowStatus
from bulkimport.store import store
from bulkimport.validation import row_label
from docqueries.services import queries_wanted
from metriport_bulk.lib.bulkdb import copy_insert, update_by_id
from patients.header import build_column_plan
from patients.matching import match_key, shares_zip
from patients.selectors import facility_patients_absent, patients_compare, patients_existing
from patients.services import patients_match_candidates

PLAN_BATCH_SIZE = 2_000
# Patients created by a bulk row get an id derived from (request, row): a re-run of the row after a crash
# creates the same id, and the result file of a resumed run equals the one of an uninterrupted run.
PATIENT_ID_NAMESPACE = uuid.UUID("6f1d2a4e-1c55-4c0e-9a43-7d7c1b9e6b10")
# The match rule's fields (patients.matching): what agrees whenever a row matches a patient.
MATCH_FIELDS = ("firstName", "lastName", "dob", "genderAtBirth", "zip")
DRIFTED_CODE = "drifted"
# A real import's row actions as they show in `plan.actions` (JSON field names are camelCase).
_COUNT_NAMES = {
    RowAction.WOULD_CREATE: "wouldCreate",
    RowAction.WOULD_UPDATE: "wouldUpdate",
    RowAction.UNCHANGED: "unchanged",
    RowAction.DUPLICATE: "duplicate",
    RowAction.CREATED: "created",
    RowAction.UPDATED: "updated",
    RowAction.DRIFTED: "drifted",
}
DRY_RUN_ACTIONS = (RowAction.WOULD_CREATE, RowAction.WOULD_UPDATE, RowAction.UNCHANGED, RowAction.DUPLICATE)
IMPORT_ACTIONS = (RowAction.CREATED, RowAction.UPDATED, RowAction.UNCHANGED, RowAction.DUPLICATE, RowAction.DRIFTED)


# uuid5's version (5) and variant (RFC 4122) bits, over the first 16 bytes of the SHA-1 digest.
_UUID5_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID5_SET = (5 << 76) | (0x8000 << 48)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MS = datetime.timedelta(milliseconds=1)


@functools.lru_cache(maxsize=64)
def _patient_id_prefix(request_id: uuid.UUID) -> bytes:
    return PATIENT_ID_NAMESPACE.bytes + f"{request_id}:".encode()


def row_patient_id(request: BulkRequest, number: int) -> uuid.UUID:
    """The id of the patient row `number` of the request creates, the same in every run of the row (a resumed
    or reprocessed request finds the patients its rows created), derived as the request says
    (BulkRequest.patient_ids):

    - 2, ordered: a version 8 UUID of the request's creation in milliseconds (48 bits), the row number (32
      bits, around the version and variant bits) and 42 bits of the request's id. A request's patients get
      increasing ids row by row, and a later request's are higher. So a chunk's patients append to the
      indexes on patient ids (the patients', their facility links', their Document Queries') instead of
      landing all over them. A million-row import took 201 s instead of 227-229 s
      (docs/benchmarks.md).
    - 1, uuid5 (requests created before): uuid.uuid5(PATIENT_ID_NAMESPACE, f"{request_id}:{number}"),
      computed with the request's part of the name hashed into a cached prefix.

    Tests hold both equal to their definitions."""
    if request.patient_ids == 1:
        digest = hashlib.sha1(_patient_id_prefix(request.id) + b"%d" % number).digest()
        return uuid.UUID(int=(int.from_bytes(digest[:16]) & _UUID5_KEEP) | _UUID5_SET)
    created = ((request.created_at - _EPOCH) // _MS) & ((1 << 48) - 1)
    return uuid.UUID(
        int=(created << 80)
        | (8 << 76)
        | (((number >> 20) & 0xFFF) << 64)
        | (0b10 << 62)
        | ((number & 0xFFFFF) << 42)
        | (request.id.int & ((1 << 42) - 1))
    )


def row_match_key(normalized: dict[str, Any]) -> str:
    """A valid row's match key (patients.matching), computed once when the row is stored."""
    return match_key(
        first_name=normalized["firstName"],
        last_name=normalized["lastName"],
        dob=normalized["dob"],
        gender_at_birth=normalized["genderAtBirth"],
    )


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # a dry run's word: would create, would update, unchanged, duplicate
    patient_id: uuid.UUID | None = None  # the existing patient it matched (a duplicate: its person's)
    duplicate_of: int | None = None

    def words(self) -> str:
        """The decision in a customer's words (ids only: no PHI)."""
        if self.action == RowAction.DUPLICATE:
            return f"duplicate of {row_label(self.duplicate_of or 0)}"
        if self.action == RowAction.UNCHANGED:
            return f"would leave patient {self.patient_id} unchanged"
        if self.patient_id is not None:
            return f"{self.action} patient {self.patient_id}"
        return str(self.action)


@dataclass(slots=True)
class _Person:
    """A person met in the file so far, for a match key that more than one row has."""

    first_row: int
    zips: set[str]
    patient_id: uuid.UUID | None


@dataclass(slots=True)
class _Planned:
    id: int
    number: int
    decision: Decision
    matched_on: str = ""
    drift: dict[str, str] | None = None
    reason: str = ""


@dataclass(slots=True)
class _State:
    repeated: dict[str, list[_Person]] = field(default_factory=dict)


def bulk_request_plan(*, request: BulkRequest, heartbeat: Callable[[], None] = lambda: None) -> None:
    """Decides the action of each pending (valid) row of `request` and stores it on the row.

    A dry run's rows become succeeded with their `would` action. A real import's rows stay pending with the
    planned action (a row to create keeps an empty one: apply's default) for apply to follow. A confirm's
    rows whose decision differs from the dry run's are `drifted`: failed (OnDrift.FAIL) or applied with the
    new decision and reported (OnDrift.APPLY). Runs in batches, one transaction each, which `heartbeat`
    opens (a parser that lost its lease writes nothing). A dry run's last step, turning the rows left into
    `would create`, is the caller's (plan_dry_run_rest), in the transaction that moves the request on."""
    repeated = set(
        BulkRow.objects.filter(request_id=request.id, status=RowStatus.PENDING)
        .exclude(match_key="")
        .values("match_key")
        .annotate(rows=Count("id"))
        .filter(rows__gt=1)
        .values_list("match_key", flat=True)
    )
    state = _State({key: [] for key in repeated})
    after = 0
    while batch := store().plan_rows(request.id, after=after, limit=PLAN_BATCH_SIZE):
        after = batch[-1][1]
        with transaction.atomic():
            heartbeat()
            planned = _decide(request, batch, state, keep_creates=request.confirms_id is not None)
            _describe(request, planned)
            if request.confirms_id is not None:
                _compare_with_preview(request, planned)
            _store(request, planned)
    if repeated:
        with transaction.atomic():
            heartbeat()
            _people_opting_out(request)


def _people_opting_out(request: BulkRequest) -> None:
    """A person opts out when any of their rows in the file says `hieOptOut` true: a duplicate row that does
    passes it on to the person's first row, which creates or updates the patient (opted out before its
    Document Query could start). The first row keeps its action (a confirm compares actions with its dry
    run's, decided before this step); the duplicate row is the one that opts the patient out. Only files
    with repeated people get here; their duplicates are few."""
    opting_out = BulkRow.objects.filter(
        request_id=request.id, action=RowAction.DUPLICATE, normalized__hieOptOut=True
    ).values("duplicate_of")
    firsts = list(BulkRow.objects.filter(request_id=request.id, number__in=opting_out).only("id", "normalized"))
    for row in firsts:
        row.normalized = {**(row.normalized or {}), "hieOptOut": True}
    BulkRow.objects.bulk_update(firsts, ["normalized"], batch_size=500)


def plan_dry_run_rest(*, request_id: uuid.UUID) -> None:
    """A planned dry run's rows not written by the plan would create their patient (one statement for the most
    common decision, instead of one write per row)."""
    BulkRow.objects.filter(request_id=request_id, status=RowStatus.PENDING).update(
        status=RowStatus.SUCCEEDED, action=RowAction.WOULD_CREATE
    )


def _decide(request: BulkRequest, batch: list[Any], state: _State, *, keep_creates: bool) -> list[_Planned]:
    """The decisions of a batch of rows (id, number, match key) in row order. A row whose key no patient has
    and no other row of the file shares would create its patient whatever its addresses: its zips are read
    only for the other rows (a first import of a roster reads none). Its decision is returned only with
    `keep_creates` (a confirm compares every row with its dry run); nothing stores it otherwise."""
    keys = {key for _, _, key in batch}
    candidates: dict[str, list[tuple[uuid.UUID, list[str]]]] = {}
    for patient_id, key, zips in patients_match_candidates(customer_id=request.customer_id, keys=keys):
        candidates.setdefault(key, []).append((patient_id, zips))
    deciding = [(row_id, number) for row_id, number, key in batch if key in candidates or key in state.repeated]
    zips_of = store().row_zips(request.id, deciding) if deciding else {}
    planned = []
    for row_id, number, key in batch:
        found = candidates.get(key)
        people = state.repeated.get(key)
        if found is None and people is None:
            if keep_creates:
                planned.append(_Planned(row_id, number, Decision(RowAction.WOULD_CREATE)))
            continue
        zips = zips_of[row_id]
        existing = next((p for p, z in found if shares_zip(z, zips)), None) if found else None
        if existing is not None and existing == row_patient_id(request, number):
            existing = None  # the row created it in an earlier run (a reprocess): it would create it still
        if people is not None:
            same = next(
                (p for p in people if not p.zips.isdisjoint(zips) or (existing and p.patient_id == existing)), None
            )
            if same is not None:
                same.zips.update(zips)
                decision = Decision(RowAction.DUPLICATE, same.patient_id, same.first_row)
                planned.append(_Planned(row_id, number, decision))
                continue
            people.append(_Person(number, set(zips), existing))
        if existing is None:
            if keep_creates:
                planned.append(_Planned(row_id, number, Decision(RowAction.WOULD_CREATE)))
        else:
            planned.append(_Planned(row_id, number, Decision(RowAction.WOULD_UPDATE, existing)))
    return planned


def _describe(request: BulkRequest, planned: list[_Planned]) -> None:
    """`unchanged` where writing the row would change nothing; the fields each match agreed on."""
    updates = [p for p in planned if p.decision.action == RowAction.WOULD_UPDATE]
    if updates:
        values = dict(
            BulkRow.objects.filter(request_id=request.id, id__in=[p.id for p in updates]).values_list(
                "id", "normalized"
            )
        )
        pairs = [(_matched(p), values[p.id] or {}) for p in updates]
        for row, (same, agreed) in zip(
            updates, patients_compare(customer_id=request.customer_id, pairs=pairs), strict=True
        ):
            if same:
                row.decision = Decision(RowAction.UNCHANGED, row.decision.patient_id)
            row.matched_on = " ".join((*MATCH_FIELDS, *agreed))
    for row in planned:
        if row.decision.action == RowAction.DUPLICATE:
            row.matched_on = " ".join(MATCH_FIELDS)
            row.reason = f"Same person as {row_label(row.decision.duplicate_of or 0)}"


def _matched(row: _Planned) -> uuid.UUID:
    assert row.decision.patient_id is not None, "an update names its patient"
    return row.decision.patient_id


def _compare_with_preview(request: BulkRequest, planned: list[_Planned]) -> None:
    """A confirm's rows whose decision differs from the one its dry run showed become drifted."""
    if not planned:
        return
    shown = {
        number: Decision(action, matched, duplicate_of)
        for number, action, matched, duplicate_of in BulkRow.objects.filter(
            request_id=request.confirms_id, number__gte=planned[0].number, number__lte=planned[-1].number
        ).values_list("number", "action", "matched_patient_id", "duplicate_of")
    }
    for row in planned:
        before = shown.get(row.number)
        if before is None or before.action not in DRY_RUN_ACTIONS or before == row.decision:
            continue  # not planned by the dry run (invalid there, or a dry run from before plans): nothing to keep
        row.drift = {"planned": before.words(), "now": row.decision.words()}
        what = "applied" if request.on_drift == OnDrift.APPLY else "not applied (onDrift=fail)"
        note = f"Changed since the preview: planned {before.words()}, now {row.decision.words()}; {what}"
        row.reason = f"{note}; {row.reason}" if row.reason else note


def _store(request: BulkRequest, planned: list[_Planned]) -> None:
    """Writes the rows' decisions. A real import's rows to create keep their defaults (nothing to write)."""
    failing = request.on_drift != OnDrift.APPLY
    written: list[tuple[Any, ...]] = []
    errors: list[tuple[Any, ...]] = []
    for row in planned:
        d = row.decision
        if row.drift is not None and failing:
            written.append(
                (row.id, RowStatus.FAILED, RowAction.DRIFTED, d.patient_id, row.matched_on, d.duplicate_of)
                + (row.drift, row.reason, DRIFTED_CODE)
            )
            errors.append((request.id, row.number, DRIFTED_CODE, "row", row.reason[:300]))
            continue
        if d.action == RowAction.WOULD_CREATE and row.drift is None:
            continue  # the default: apply's (an import), plan_dry_run_rest's (a dry run)
        status = RowStatus.SUCCEEDED if request.dry_run else RowStatus.PENDING
        written.append(
            (row.id, status, d.action, d.patient_id, row.matched_on, d.duplicate_of, row.drift, row.reason, "")
        )
    update_by_id(
        BulkRow,
        ("status", "action", "matched_patient_id", "matched_on", "duplicate_of", "drift", "reason", "error_code"),
        written,
    )
    if errors:
        copy_insert(BulkRowError, ("request_id", "row_number", "code", "field", "message"), errors)


# --- the summary, once a request's rows are done -----------------------------------------------------------------


def _counted_rows(request: BulkRequest) -> Any:
    """The rows `plan.actions` counts: the ones that took (or would take) an action, and the drifted rows
    that were not applied (failed rows; they count as drifted all the same)."""
    names = DRY_RUN_ACTIONS if request.dry_run else IMPORT_ACTIONS
    return BulkRow.objects.filter(request_id=request.id).filter(
        Q(status=RowStatus.SUCCEEDED, action__in=names) | Q(status=RowStatus.FAILED, action=RowAction.DRIFTED)
    )


def _named(request: BulkRequest, counted: dict[str, int]) -> dict[str, int]:
    names = DRY_RUN_ACTIONS if request.dry_run else IMPORT_ACTIONS
    return {_COUNT_NAMES[action]: counted.get(action, 0) for action in names}


def plan_counts(request: BulkRequest) -> dict[str, int]:
    """Rows per action (camelCase names), every action of the request's kind present (0 when none)."""
    return _named(request, dict(_counted_rows(request).values_list("action").annotate(n=Count("id")).order_by()))


def plan_facility_counts(request: BulkRequest) -> dict[str, dict[str, int]]:
    """`plan.facilities`: facility id -> its rows per action (as plan_counts), for each facility a row goes
    to (its `facilityId` cell, else the request's facility)."""
    default = str(request.facility_id)
    if not request.header or build_column_plan(request.header).facility_id is None:
        return {default: plan_counts(request)}
    grouped: dict[str, dict[str, int]] = {}
    for facility_id, action, rows in (
        _counted_rows(request)
        .annotate(facility=KT("normalized__facilityId"))
        .values_list("facility", "action")
        .annotate(n=Count("id"))
        .order_by()
    ):
        # An empty cell is JSON null: SQL NULL on PostgreSQL, the text "null" on SQLite (never a facility id).
        counts = grouped.setdefault(facility_id if facility_id and facility_id != "null" else default, {})
        counts[action] = counts.get(action, 0) + rows
    return {facility_id: _named(request, counted) for facility_id, counted in sorted(grouped.items())}


def plan_document_queries(request: BulkRequest, *, rerun: bool = False) -> int:
    """The Document Queries the planned rows start under the budget's rule (docqueries.services.budget): a
    dry run's (what its confirm would start; once planned, every row decided) or an import's pending rows'
    (before they are applied). A person counts once (duplicates are their first row's), rows opting out
    (hieOptOut, the file's own included) not at all, a matched patient unless opted out or recently queried.

    `rerun`: the import ran before (a reprocess of it): only the queries it would newly start count
    (_rerun_document_queries)."""
    if request.dry_run:
        rows = BulkRow.objects.filter(
            request_id=request.id,
            status=RowStatus.SUCCEEDED,
            action__in=(RowAction.WOULD_CREATE, RowAction.WOULD_UPDATE, RowAction.UNCHANGED),
        )
    else:
        rows = BulkRow.objects.filter(request_id=request.id, status=RowStatus.PENDING).exclude(
            action=RowAction.DUPLICATE
        )
    # A valid row's normalized values always hold hieOptOut (true or false).
    rows = rows.filter(normalized__hieOptOut=False)
    creating = rows.filter(matched_patient_id__isnull=True)
    matching = rows.filter(matched_patient_id__isnull=False)
    if rerun and not request.dry_run:
        return _rerun_document_queries(request, creating, matching)
    return queries_wanted(
        customer_id=request.customer_id,
        new_patients=creating.count(),
        matched=matching.values("matched_patient_id"),
    )


def _rerun_document_queries(request: BulkRequest, creating: Any, matching: Any) -> int:
    """The count of an import that ran before: a row planned to create its patient finds the one its earlier
    run created when there is one (row_patient_id: apply makes it the row's patient again), which counts as a
    matched patient; and a patient with a query of this request already gets no second one (one per patient
    and request). In batches of row numbers (memory stays flat)."""
    wanted = queries_wanted(
        customer_id=request.customer_id,
        new_patients=0,
        matched=matching.values("matched_patient_id"),
        bulk_request_id=request.id,
    )
    after = 0
    while numbers := list(
        creating.filter(number__gt=after).order_by("number").values_list("number", flat=True)[:PLAN_BATCH_SIZE]
    ):
        after = numbers[-1]
        own = [row_patient_id(request, number) for number in numbers]
        created_before = patients_existing(customer_id=request.customer_id, patient_ids=own)
        again = set(created_before)
        if again:
            # Counted once: a patient another row matches is among the matched ones already.
            again -= set(matching.filter(matched_patient_id__in=again).values_list("matched_patient_id", flat=True))
        wanted += queries_wanted(
            customer_id=request.customer_id,
            new_patients=len(own) - len(created_before),
            matched=again,
            bulk_request_id=request.id,
        )
    return wanted


def absent_patients(request: BulkRequest) -> Any:
    """The facility's patients that no row of the request matched (a dry run: the patients its rows matched;
    a real import: the patients its rows were applied to). Nothing is deleted."""
    column = "matched_patient_id" if request.dry_run else "patient_id"
    rows = BulkRow.objects.filter(request_id=request.id)
    return facility_patients_absent(facility_id=request.facility_id, rows=rows, column=column)


ABSENT_COLUMNS = ("metriportId", "externalId", "firstName", "lastName", "dob", "genderAtBirth", "dateCreated")


def absent_rows(request: BulkRequest) -> Iterable[list[str]]:
    """The absent patients as CSV cells (ABSENT_COLUMNS), streamed."""
    for patient_id, external_id, first, last, dob, gender, created in (
        absent_patients(request)
        .values_list("id", "external_id", "first_name", "last_name", "dob", "gender_at_birth", "created_at")
        .iterator(chunk_size=2000)
    ):
        yield [str(patient_id), external_id, first, last, str(dob), gender, created.isoformat()]
