"""patients' statements through the ORM (the embedded SQLite default): values built in Python."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from metriport_bulk.lib.bulkdb import orm as generic
from patients.columns import PATIENT_COLUMNS, patient_fields
from patients.models import Patient, PatientFacility
from patients.store.records import ChangedPatient

if TYPE_CHECKING:
    from patients.store import DemographicsSource
    from patients.store.records import NewPatient


def match_candidates(customer_id: uuid.UUID, keys: Sequence[str]) -> list[Any]:
    return list(
        Patient.objects.filter(customer_id=customer_id, match_key__in=keys)
        .order_by("created_at", "id")
        .values_list("id", "match_key", "zips")
    )


def write_batch(
    *,
    customer_id: uuid.UUID,
    facility_id: uuid.UUID,
    created: Sequence[NewPatient],
    updated: Sequence[ChangedPatient],
    now: datetime,
    source: DemographicsSource,
) -> None:
    taken = set(Patient.objects.filter(id__in=[p.id for p in created]).values_list("id", flat=True))
    if taken:
        # Ids taken already: patients an earlier run of the same rows created (see PatientStore).
        updated = [*updated, *(ChangedPatient(p.id, p.source, p.hie_opt_out) for p in created if p.id in taken)]
        created = [p for p in created if p.id not in taken]
    sources = source.load([p.source for p in created] + [p.source for p in updated])
    new = []
    for patient in created:
        fields = patient_fields(sources[patient.source])
        fields["match_key"] = patient.match_key
        new.append(
            Patient(
                id=patient.id,
                customer_id=customer_id,
                created_at=patient.created_at,
                updated_at=patient.created_at,
                hie_opt_out=patient.hie_opt_out,
                **fields,
            )
        )
    Patient.objects.bulk_create(new, batch_size=500)
    # bulk_create let auto_now_add overwrite created_at: put the distinct values back.
    generic.update_by_id(Patient, ("created_at", "updated_at"), [(p.id, p.created_at, p.created_at) for p in created])
    changes = []
    for change in updated:
        fields = patient_fields(sources[change.source])  # PATIENT_COLUMNS: a patient keeps its match key
        changes.append((change.id, *(fields[name] for name in PATIENT_COLUMNS), now))
    generic.update_by_id(Patient, (*PATIENT_COLUMNS, "updated_at"), changes)
    opting_out = [change.id for change in updated if change.opt_out]
    if opting_out:
        Patient.objects.filter(id__in=opting_out).update(hie_opt_out=True)
    PatientFacility.objects.bulk_create(
        [PatientFacility(patient_id=patient_id, facility_id=facility_id) for patient_id in _ids(created, updated)],
        batch_size=500,
        ignore_conflicts=True,
    )


def _ids(created: Sequence[NewPatient], updated: Sequence[ChangedPatient]) -> list[uuid.UUID]:
    return [p.id for p in created] + [p.id for p in updated]


def rekey(keys: Sequence[tuple[uuid.UUID, str]]) -> int:
    current = dict(Patient.objects.filter(id__in=[patient_id for patient_id, _ in keys]).values_list("id", "match_key"))
    changed = [Patient(id=patient_id, match_key=key) for patient_id, key in keys if current.get(patient_id) != key]
    Patient.objects.bulk_update(changed, ["match_key"], batch_size=500)
    return len(changed)
