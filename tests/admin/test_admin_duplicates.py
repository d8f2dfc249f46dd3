"""The admin's duplicate groups (patients of one customer sharing a match key): ids for every staff member,
names and dates of birth only for PHI viewers (and then logged). Failure modes named: PHI shown to staff without
the permission, a PHI view left out of the access log."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse

from patients.models import Patient, PhiAccessLog
from patients.services import patients_rekey

pytestmark = pytest.mark.django_db


@pytest.fixture
def group(tenant) -> list[Patient]:
    patients = [
        Patient.objects.create(
            customer=tenant.customer,
            first_name=first,
            last_name="Quartermaine",
            dob=datetime.date(1961, 7, 14),
            gender_at_birth="F",
            addresses=[{"addressLine1": "1 Main St", "city": "Springfield", "state": "IL", "zip": "62701"}],
            match_key=f"{first}|stale",
            zips=["62701"],
        )
        for first in ("Zelda", "Z\u0435lda\u200e")  # Cyrillic е, a bidi mark
    ]
    patients_rekey()
    return patients


def test_staff_without_phi_see_the_group_by_ids_only(group, tenant, no_phi_client):
    response = no_phi_client.get(reverse("admin:patients_patient_duplicates") + f"?customer={tenant.customer.id}")
    html = response.content.decode()
    assert response.status_code == 200
    assert all(str(patient.id) in html for patient in group)
    for value in ("Zelda", "Quartermaine", "1961", "62701"):
        assert value not in html
    assert not PhiAccessLog.objects.exists()


def test_phi_viewers_see_names_and_the_view_is_logged(group, support_client):
    response = support_client.get(reverse("admin:patients_patient_duplicates"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Zelda Quartermaine" in html and "1961-07-14" in html
    (entry,) = PhiAccessLog.objects.all()
    assert entry.action == "list" and set(entry.object_ids) == {str(patient.id) for patient in group}


def test_no_groups_says_so(tenant, support_client):
    html = support_client.get(reverse("admin:patients_patient_duplicates")).content.decode()
    assert "No patients share a match key." in html
    assert not PhiAccessLog.objects.exists()


def test_the_patient_list_links_to_the_groups(tenant, no_phi_client):
    url = reverse("admin:patients_patient_changelist") + f"?customer__id__exact={tenant.customer.id}"
    html = no_phi_client.get(url).content.decode()
    assert reverse("admin:patients_patient_duplicates") + f"?customer={tenant.customer.id}" in html
