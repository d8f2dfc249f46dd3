"""Fixtures of the Document Query tests: patients with recognisable demographics (to prove they never leak
into webhooks) and a webhook endpoint on the real local receiver."""

from __future__ import annotations

import datetime

import pytest

from patients.models import Customer, Patient
from tests.receiver import Receiver
from tests.waiting import wait_until  # noqa: F401 - re-exported for the tests of this folder
from webhooks.models import WebhookEndpoint
from webhooks.signing import webhook_key_generate

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


@pytest.fixture
def webhook_receiver():
    """A receiver of its own: the shared `receiver` plays the network gateway in some of these tests."""
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def hook(tenant, webhook_receiver) -> WebhookEndpoint:
    return WebhookEndpoint.objects.create(
        customer=tenant.customer, url=f"{webhook_receiver.url}/hook", key=webhook_key_generate()
    )
