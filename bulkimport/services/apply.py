"""Apply a request's valid rows (SPEC §5): one chunk of rows per transaction decides each row's patient by
the match rule, has `patients` write them (create or update, and the facility link), marks the rows
succeeded and starts the patients' Document Queries. Rows already applied are skipped: re-runs are no-ops.

Chunks are handed out fairly across requests: each chunk message is a token that applies the pending chunk
with the least progress of any request (its own when nothing is fairer)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from bulkimport.models import BulkChunk, BulkPhase, BulkRequest, BulkRow, BulkStatus, ChunkStatus, RowAction
from bulkimport.services import dispatch
from bulkimport.services.plan import MATCH_FIELDS, row_patient_id
from bulkimport.states import phase_transition
from bulkimport.store import store
from cohorts.services import cohorts_join_by_name
from docqueries.services import (
    budget_of,
    document_queries_held_back,
    document_queries_start,
    patients_recently_queried,
)
from metriport_bulk.lib.bulkdb import relax_commit
from patients.header import build_column_plan
from patients.matching import shares_zip
from patients.services import (
    patient_match_keys_lock,
    patients_facilities_link,
    patients_match_candidates,
    patients_write_batch,
)

BULK_DUPLICATES_BATCH = 2_000


def _fairest_pending_chunk() -> BulkChunk | None:
    """Locks and returns the pending chunk with the least progress among all processing requests: the lowest
    index, so every request's first chunks come before any request's later ones and a small request never
    waits behind a big one (SKIP LOCKED: chunks being applied by other workers are passed over)."""
    return (
        BulkChunk.objects.select_for_update(of=("self",), skip_locked=True)
        .filter(status=ChunkStatus.PENDING, request__status=BulkStatus.PROCESSING, request__phase=BulkPhase.APPLYING)
        .order_by("index", "id")
        .select_related("request")
        .first()
    )


def bulk_chunk_apply(*, chunk_id: int, fair: bool = False) -> None:
    """Creates or updates the patients of one chunk's valid rows, links them to the facility and starts
    their Document Queries, all in one transaction.

    `fair` (what the actor does): the message is a token, not an order. It applies the fairest pending chunk
    of any request (_fairest_pending_chunk), its own chunk when nothing is fairer. There is one message per
    chunk, so every chunk still gets one; the order in which they are applied is decided here, round-robin
    by progress, instead of by the broker's first come, first served."""
    # Before the chunk's transaction (the lane's row is not held while the chunk runs).
    document_queries_held_back()
    with transaction.atomic():
        chunk = _fairest_pending_chunk() if fair else None
        if chunk is None:
            # of=("self",): lock the chunk only. A plain FOR UPDATE would also lock the joined request row
            # and make the chunks of a request run one at a time.
            chunk = (
                BulkChunk.objects.select_for_update(of=("self",)).filter(id=chunk_id).select_related("request").first()
            )
        if chunk is None or chunk.status == ChunkStatus.DONE:
            return
        request = chunk.request
        if request.status != BulkStatus.PROCESSING or request.phase != BulkPhase.APPLYING:
            return
        relax_commit()
        rows = pending_rows(request.id, first=chunk.first_number, last=chunk.last_number)
        # A row the plan found the same person as an earlier row waits for all chunks (_apply_duplicates):
        # its earlier row, in any chunk, has its patient by then.
        applied = apply_rows(
            request, [row for row in rows if row.planned != RowAction.DUPLICATE], first_chunk=chunk.index == 0
        )
        # One UPDATE of the chunk row: a second one in the same transaction would also check its reference to
        # the request at COMMIT (PostgreSQL checks a row this transaction wrote).
        BulkChunk.objects.filter(id=chunk.id).update(status=ChunkStatus.DONE, attempts=F("attempts") + 1)
        # Lock the request last: it serializes chunk completions so exactly one sees "no chunk left".
        locked = BulkRequest.objects.select_for_update().get(id=request.id)
        if locked.status != BulkStatus.PROCESSING:
            # Cancelled while this chunk ran: its rows are reported as cancelled, so none may be applied.
            transaction.set_rollback(True)
            return
        last = (
            locked.phase == BulkPhase.APPLYING
            and not BulkChunk.objects.filter(request_id=request.id, status=ChunkStatus.PENDING).exists()
        )
        if last:
            applied += _apply_duplicates(request)
        BulkRequest.objects.filter(id=request.id).update(
            processed=F("processed") + applied, successful=F("successful") + applied, heartbeat_at=timezone.now()
        )
        if last and phase_transition(request.id, source=BulkPhase.APPLYING, target=BulkPhase.FINISHING):
            dispatch.finish_on_commit(request.id)


def _apply_duplicates(request: BulkRequest) -> int:
    """After the last chunk: the rows the plan found the same person as an earlier row go to that row's
    patient, in row order (the patient ends up holding the last row's values, as when rows run in order)."""
    applied = 0
    while rows := pending_rows(request.id, limit=BULK_DUPLICATES_BATCH):
        earlier = {row.duplicate_of for row in rows if row.duplicate_of is not None}
        roots = {
            number: patient_id
            for number, patient_id in BulkRow.objects.filter(
                request_id=request.id, number__in=earlier, patient_id__isnull=False
            ).values_list("number", "patient_id")
        }
        applied += apply_rows(request, rows, roots=roots)
    return applied


@dataclass(slots=True)
class PendingRow:
    """What deciding a row's patient needs; the row's full normalized values stay in the database."""

    id: int
    number: int
    match_key: str
    zips: list[str]
    opted_out: bool
    planned: str = ""  # the plan's action (services.plan); empty: create, or no plan (reprocess)
    planned_patient: uuid.UUID | None = None
    matched_on: str = ""
    duplicate_of: int | None = None
    drifted: bool = False
    patient_id: uuid.UUID | None = None
    action: str = ""
    matched: uuid.UUID | None = None


def pending_rows(
    request_id: uuid.UUID, *, first: int = 1, last: int = 2**31 - 1, limit: int | None = None
) -> list[PendingRow]:
    """The pending rows numbered first..last, in row order (at most `limit`)."""
    found = store().pending_rows(request_id, first=first, last=last, limit=limit or last - first + 1)
    return [
        PendingRow(
            row_id,
            number,
            key,
            sorted(set(zips)),
            bool(opted_out),
            planned,
            planned_patient,
            matched_on,
            duplicate_of,
            bool(drifted),
        )
        for row_id, number, key, zips, opted_out, planned, planned_patient, matched_on, duplicate_of, drifted in found
    ]


@dataclass(slots=True)
class Candidate:
    """A patient a row may be: an existing one, or one created by an earlier row of this chunk. `source_row`
    is the last row matched to it: the patient ends up holding that row's values."""

    id: uuid.UUID
    zips: list[str]
    match_key: str
    created: bool
    source_row: int = 0
    opt_out: bool = False  # a row applied to it says hieOptOut=true: it becomes (or stays) opted out


@dataclass(frozen=True, slots=True)
class _RowsOfRequest:
    """The normalized values of a request's rows numbered within `numbers`, where patients reads them
    (patients.store.DemographicsSource)."""

    request_id: uuid.UUID
    numbers: tuple[int, int]

    def relation(self) -> tuple[str, list[Any]]:
        # The number range lets PostgreSQL reach the rows by index, not by scanning the table.
        return (
            "SELECT id, normalized AS n FROM bulkimport_bulkrow WHERE request_id = %s AND number BETWEEN %s AND %s",
            [self.request_id, *self.numbers],
        )

    def load(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        rows = BulkRow.objects.filter(request_id=self.request_id, id__in=ids).values_list("id", "normalized")
        return {row_id: normalized or {} for row_id, normalized in rows}


def apply_rows(
    request: BulkRequest,
    rows: list[PendingRow],
    *,
    first_chunk: bool = False,
    roots: dict[int, uuid.UUID] | None = None,
) -> int:
    """Create-or-update for `rows` (valid, pending, in row order) inside the caller's transaction: decides
    each row's patient, has patients write them and link them to the facility, marks the rows succeeded and
    starts the Document Queries of the rows not opted out. Returns the number of rows applied.

    A row's patient is the match rule's (the plan's rule, services.plan: with no competing write meanwhile,
    the patient the plan named); a planned duplicate's is its earlier row's patient (`roots`: row number ->
    patient). The action reported is the plan's word made real: created, updated, unchanged (the plan found
    nothing to change on that very patient), duplicate, or drifted (a confirm's row whose decision changed
    since its dry run, applied)."""
    if not rows:
        return 0
    keys = {row.match_key for row in rows}
    patient_match_keys_lock(request.customer_id, keys)
    candidates: dict[str, list[Candidate]] = {}
    for patient_id, key, zips in patients_match_candidates(customer_id=request.customer_id, keys=keys):
        candidates.setdefault(key, []).append(Candidate(patient_id, zips, key, created=False))
    touched: dict[uuid.UUID, Candidate] = {}
    for row in rows:
        root = (roots or {}).get(row.duplicate_of or 0) if row.planned == RowAction.DUPLICATE else None
        match: Candidate | None
        if root is not None:
            match = touched.get(root) or Candidate(root, row.zips, row.match_key, created=False)
            row.action = RowAction.DUPLICATE
            row.matched = root
            row.matched_on = row.matched_on or " ".join(MATCH_FIELDS)
        else:
            found = candidates.get(row.match_key)
            match = next((c for c in found if shares_zip(c.zips, row.zips)), None) if found else None
            own = row_patient_id(request, row.number)
            if match is None:
                match = Candidate(own, row.zips, row.match_key, created=True)
                candidates.setdefault(row.match_key, []).append(match)
            else:
                match.zips = row.zips  # the patient now holds this row's addresses
            if match.id == own:
                # Created by this row: now, or in an earlier run of the request (a reprocess), which then
                # reads as a fresh import's result would.
                row.action = RowAction.CREATED
                row.matched_on = ""
            else:
                same_as_planned = row.planned == RowAction.UNCHANGED and row.planned_patient == match.id
                row.action = RowAction.UNCHANGED if same_as_planned else RowAction.UPDATED
                if not match.created:
                    row.matched = match.id
                    if row.planned_patient != match.id:
                        row.matched_on = " ".join(MATCH_FIELDS)
        if row.drifted:
            row.action = RowAction.DRIFTED
        match.source_row = row.id
        match.opt_out = match.opt_out or row.opted_out
        touched[match.id] = match
        row.patient_id = match.id
    numbers = (rows[0].number, rows[-1].number)
    _write_by_facility(request, rows, touched, numbers)
    store().mark_applied(
        request.id, [(row.id, row.action, _applied(row), row.matched, row.matched_on) for row in rows], numbers
    )
    _join_cohorts(request, rows, numbers)
    opted_in = list(dict.fromkeys(_applied(row) for row in rows if not row.opted_out))
    requery_after = budget_of(customer_id=request.customer_id).requery_after_hours
    if requery_after and opted_in:
        # The budget's rule (docqueries.services.budget): a patient queried lately is not queried again.
        recent = patients_recently_queried(customer_id=request.customer_id, patient_ids=opted_in, hours=requery_after)
        opted_in = [patient_id for patient_id in opted_in if patient_id not in recent]
    if opted_in:
        document_queries_start(
            customer_id=request.customer_id, patient_ids=opted_in, bulk_request_id=request.id, express=first_chunk
        )
    return len(rows)


def _row_facilities(request: BulkRequest, rows: list[PendingRow], numbers: tuple[int, int]) -> dict[int, uuid.UUID]:
    """Row id -> the facility its `facilityId` cell routes it to (files with that column only; checked when the
    file was parsed: an active facility of the customer's). Rows without one go to the request's facility."""
    if not request.header or build_column_plan(request.header).facility_id is None:
        return {}
    routed = BulkRow.objects.filter(
        request_id=request.id,
        number__range=numbers,
        id__in=[row.id for row in rows],
        normalized__facilityId__isnull=False,
    ).values_list("id", "normalized__facilityId")
    return {row_id: uuid.UUID(str(facility_id)) for row_id, facility_id in routed if facility_id}


def _write_by_facility(
    request: BulkRequest, rows: list[PendingRow], touched: dict[uuid.UUID, Candidate], numbers: tuple[int, int]
) -> None:
    """Has patients write the chunk's patients, each linked to its rows' facilities: a patient is written
    once, with the facility of the row whose values it takes; a patient that rows route to other facilities
    too is linked to those as well (facilities add, as the request's facility does)."""
    facility_of = _row_facilities(request, rows, numbers)
    groups: dict[uuid.UUID, list[Candidate]] = {}
    for patient in touched.values():
        groups.setdefault(facility_of.get(patient.source_row, request.facility_id), []).append(patient)
    for facility_id, patients in groups.items():
        patients_write_batch(
            customer_id=request.customer_id,
            facility_id=facility_id,
            created=[(p.id, p.match_key, p.source_row, p.opt_out) for p in patients if p.created],
            updated=[(p.id, p.source_row, p.opt_out) for p in patients if not p.created],
            source=_RowsOfRequest(request.id, numbers),
        )
    if facility_of:
        written = {(p.id, facility_id) for facility_id, patients in groups.items() for p in patients}
        links = {(_applied(row), facility_of.get(row.id, request.facility_id)) for row in rows} - written
        patients_facilities_link(links=sorted(links))


def _join_cohorts(request: BulkRequest, rows: list[PendingRow], numbers: tuple[int, int]) -> None:
    """The patients join the cohorts their rows name (a file with cohort columns only): an import adds
    memberships, never removes one."""
    if not request.header or not build_column_plan(request.header).cohorts:
        return
    patient_of = {row.id: _applied(row) for row in rows}
    named = BulkRow.objects.filter(
        request_id=request.id, number__range=numbers, id__in=list(patient_of), normalized__has_key="cohorts"
    ).values_list("id", "normalized__cohorts")
    cohorts_join_by_name(
        customer_id=request.customer_id,
        names_by_patient=[(patient_of[row_id], names) for row_id, names in named if names],
    )


def _applied(row: PendingRow) -> uuid.UUID:
    assert row.patient_id is not None, "every row was given its patient"
    return row.patient_id
