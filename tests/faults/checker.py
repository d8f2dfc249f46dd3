"""The checker: after the nemesis has healed everything, what each bulk request must show (issue 23).

For every request: every row of the file has exactly one outcome (a stored row, not pending, and one line of
the result CSV); no two patients of the customer for one person (match key); each patient created by one row,
linked to the facility once, and referenced by the rows; exactly one final webhook message (deliveries of it
may repeat: at-least-once, same messageId) with a `processing` one delivered before it, and each patient's
Document Query result in one document-download message; the result CSV equal
to the fault-free run of the same file (ids aside); and the request final within the bound.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FINAL = ("completed", "failed")
# Derived from the request's id (the sandbox's documents too), or ids of the run's own customer (its facility,
# the patients a row matched).
ID_COLUMNS = ("metriportId", "documents", "facilityId", "matchedPatientId")


@dataclass
class Tally:
    rows: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    mismatched: int = 0
    redelivered: int = 0  # webhook deliveries of a message already delivered (allowed: at-least-once)
    problems: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in ("rows", "lost", "duplicated", "stuck", "mismatched", "redelivered"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems.extend(other.problems)

    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck or self.mismatched or self.problems)


def without_ids(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ID_COLUMNS} for row in rows]


def webhook_deliveries(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check_request(
    *,
    label: str,
    request_id: str,
    customer_id,
    facility_id,
    result_rows: list[dict] | None,
    reference_rows: list[dict],
    reference_patients: int,
    deliveries: list[dict],
) -> Tally:
    from bulkimport.models import BulkRequest, BulkRow, RowStatus
    from patients.models import Patient, PatientFacility

    tally = Tally(rows=len(reference_rows))
    problem = tally.problems.append
    request = BulkRequest.objects.get(id=request_id)
    if request.status not in FINAL:
        tally.stuck += 1
        problem(f"{label}: stuck {request.status}/{request.phase}")
    elif request.status != "completed":
        problem(f"{label}: {request.status}: {request.reason}")

    # Every row exactly one outcome: stored once, not pending, one result line.
    numbers = Counter(BulkRow.objects.filter(request_id=request_id).values_list("number", flat=True))
    expected = range(1, len(reference_rows) + 1)
    missing = sum(1 for n in expected if n not in numbers)
    extra = sum(c - 1 for c in numbers.values()) + sum(1 for n in numbers if n not in expected)
    pending = BulkRow.objects.filter(request_id=request_id, status=RowStatus.PENDING).count()
    tally.lost += missing + pending
    tally.duplicated += extra
    if missing or pending or extra:
        problem(f"{label}: rows missing {missing}, pending {pending}, extra {extra}")
    if result_rows is None:
        tally.lost += len(reference_rows)
        problem(f"{label}: no result CSV")
    else:
        if len(result_rows) < len(reference_rows):
            tally.lost += len(reference_rows) - len(result_rows)
        if len(result_rows) > len(reference_rows):
            tally.duplicated += len(result_rows) - len(reference_rows)
        differing = sum(
            1 for a, b in zip(without_ids(result_rows), without_ids(reference_rows), strict=False) if a != b
        )
        if differing:
            tally.mismatched += differing
            first = next(
                i
                for i, (a, b) in enumerate(zip(without_ids(result_rows), without_ids(reference_rows), strict=False))
                if a != b
            )
            got, want = without_ids(result_rows)[first], without_ids(reference_rows)[first]
            diff = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
            problem(f"{label}: {differing} result rows differ from the fault-free run, first line {first + 1}: {diff}")

    # No two patients for one person; each patient created by one row and linked once.
    patients = Patient.objects.filter(customer_id=customer_id)
    # One person: the same match key and zip codes (the key alone may name two people: zips decide).
    keys = Counter((key, tuple(sorted(zips))) for key, zips in patients.values_list("match_key", "zips"))
    twins = sum(c - 1 for c in keys.values() if c > 1)
    if twins:
        tally.duplicated += twins
        problem(f"{label}: {twins} patients are second patients of one person")
    patient_ids = {str(p) for p in patients.values_list("id", flat=True)}
    created = Counter(
        str(p)
        for p in BulkRow.objects.filter(request_id=request_id, action="created").values_list("patient_id", flat=True)
    )
    referenced = {
        str(p)
        for p in BulkRow.objects.filter(request_id=request_id, patient_id__isnull=False).values_list(
            "patient_id", flat=True
        )
    }
    twice = sum(c - 1 for c in created.values() if c > 1)
    orphans = len(patient_ids - referenced)
    links = Counter(
        (str(p), str(f))
        for p, f in PatientFacility.objects.filter(patient__customer_id=customer_id).values_list(
            "patient_id", "facility_id"
        )
    )
    unlinked = sum(1 for p in patient_ids if links.get((p, str(facility_id)), 0) == 0)
    if twice or orphans:
        tally.duplicated += twice + orphans
        problem(f"{label}: patients created by two rows {twice}, created but no row's {orphans}")
    if unlinked or any(c > 1 for c in links.values()):
        problem(
            f"{label}: patients not linked to the facility {unlinked}, linked twice {sum(c > 1 for c in links.values())}"
        )
    if len(patient_ids) != reference_patients:
        problem(f"{label}: {len(patient_ids)} patients, the fault-free run made {reference_patients}")

    # Webhooks: one final message, `processing` delivered before it.
    mine = [
        d
        for d in deliveries
        if isinstance(d["body"], dict) and d["body"].get("bulkPatientCreate", {}).get("requestId") == request_id
    ]
    mine.sort(key=lambda d: d["t"])
    by_id = Counter(d["body"]["meta"]["messageId"] for d in mine)
    tally.redelivered += sum(c - 1 for c in by_id.values())
    finals = {d["body"]["meta"]["messageId"] for d in mine if d["body"]["bulkPatientCreate"]["status"] in FINAL}
    if not finals:
        tally.stuck += 1
        problem(f"{label}: no final webhook")
    elif len(finals) > 1:
        tally.duplicated += len(finals) - 1
        problem(f"{label}: {len(finals)} distinct final webhooks")
    if finals:
        first_final = next(i for i, d in enumerate(mine) if d["body"]["bulkPatientCreate"]["status"] in FINAL)
        if not any(d["body"]["bulkPatientCreate"]["status"] == "processing" for d in mine[:first_final]):
            problem(f"{label}: no `processing` webhook before the final one")
    # Each patient's Document Query result is one webhook message (repeated deliveries of it aside).
    reported: dict[str, set[str]] = {}
    for d in deliveries:
        body = d["body"]
        if isinstance(body, dict) and body.get("meta", {}).get("type") == "medical.document-download":
            for entry in body.get("patients", []):
                if entry.get("patientId") in patient_ids:
                    reported.setdefault(entry["patientId"], set()).add(body["meta"]["messageId"])
    reported_twice = sum(len(ids) - 1 for ids in reported.values() if len(ids) > 1)
    if reported_twice:
        tally.duplicated += reported_twice
        problem(f"{label}: {reported_twice} Document Query results sent in a second message")
    return tally
