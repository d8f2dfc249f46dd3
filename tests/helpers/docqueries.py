"""Document Query helpers: patients with recognisable demographics, to prove they never leak into webhooks."""

from __future__ import annotations

import datetime

from patients.models import Customer, Patient

PHI_MARKERS = ("Zebulon", "Quixley", "1961-07-23", "742 Evergreen", "Springfield", "62704", "555-0142", "123456789")


def make_patients(customer: Customer, count: int, *, prefix: str = "ext") -> list[Patient]:
    patients = [
        Patient(
            customer=customer,
            external_id=f"{prefix}-{index}",
            first_name="Zebulon",
            last_name="Quixley",
            dob=datetime.date(1961, 7, 23),
            gender_at_birth="M",
            ssn="123456789",
            addresses=[{"addressLine1": "742 Evergreen Terrace", "city": "Springfield", "state": "IL", "zip": "62704"}],
            contacts=[{"phone": "2175550142"}],
            match_key=f"zebulon|quixley|1961-07-23|m|{prefix}{index}",
            zips=["62704"],
        )
        for index in range(count)
    ]
    return Patient.objects.bulk_create(patients)
