"""The records a patient store's batch write takes (patients.store), in a module of their own: the stores
build them too (an id taken already turns a new patient into a changed one)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class NewPatient:
    id: uuid.UUID
    match_key: str
    source: int  # the id of its values in the DemographicsSource
    created_at: datetime
    hie_opt_out: bool = False


@dataclass(frozen=True, slots=True)
class ChangedPatient:
    id: uuid.UUID
    source: int
    opt_out: bool = False  # True: the patient becomes opted out of HIE exchange; False: its opt-out stays as is
