"""The Patient columns that normalized demographics give: one rule for bulk rows (patients.store: in Python
on the ORM, in SQL on PostgreSQL, held equal by tests/bulkimport/test_apply.py) and API bodies alike."""

from __future__ import annotations

import itertools
from typing import Any

from patients.matching import match_key
from patients.models import Patient

# What a write overwrites on an existing patient: the external id and the demographics (Patient.PHI_FIELDS), but
# not its match key (nor its id and its links).
PATIENT_COLUMNS: tuple[str, ...] = ("external_id", *(name for name in Patient.PHI_FIELDS if name != "match_key"))


def patient_fields(normalized: dict[str, Any]) -> dict[str, Any]:
    """The Patient columns a valid row's normalized values give (bulk rows and API bodies alike)."""
    addresses = normalized["addresses"]
    contacts = [
        {key: value for key, value in (("phone", phone), ("email", email)) if value}
        for phone, email in itertools.zip_longest(normalized.get("phones") or [], normalized.get("emails") or [])
    ]
    return {
        "external_id": normalized.get("externalId") or "",
        "first_name": normalized["firstName"],
        "last_name": normalized["lastName"],
        "dob": normalized["dob"],
        "gender_at_birth": normalized["genderAtBirth"],
        "ssn": normalized.get("ssn") or "",
        "drivers_license": normalized.get("driversLicense"),
        "addresses": addresses,
        "contacts": contacts,
        "zips": sorted({address["zip"] for address in addresses}),
        "match_key": match_key(
            first_name=normalized["firstName"],
            last_name=normalized["lastName"],
            dob=normalized["dob"],
            gender_at_birth=normalized["genderAtBirth"],
        ),
    }
