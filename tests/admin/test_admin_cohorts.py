"""Cohorts in the admin: each customer's cohorts with sizes, the patient list filtered by cohort (with or
without PHI rights), a patient's cohorts on its page, the per-customer unknown-name policy."""

from __future__ import annotations

import pytest

from cohorts import services
from cohorts.models import Cohort
from patients.models import Patient
from tests.helpers.bulk import csv_bytes, person, run_inline, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def cohort_with_one(tenant) -> Cohort:
    run_inline(submit(tenant, csv_bytes([person("Ann"), person("Bea")])).id)
    cohort = services.cohort_create(customer=tenant.customer, name="Diabetes")
    services.cohort_patients_add(
        cohort=cohort, patient_ids=[str(Patient.objects.get(first_name="Ann").id)], all_patients=False
    )
    return cohort


def test_cohort_list_and_page(support_client, cohort_with_one):
    listed = support_client.get("/admin/cohorts/cohort/")
    assert listed.status_code == 200 and b"Diabetes" in listed.content
    page = support_client.get(f"/admin/cohorts/cohort/{cohort_with_one.pk}/change/")
    assert page.status_code == 200 and b"1 patient(s)" in page.content


@pytest.mark.parametrize("client_name", ["support_client", "no_phi_client"])
def test_patient_list_filters_by_cohort(request, client_name, tenant, cohort_with_one):
    client = request.getfixturevalue(client_name)
    base = f"/admin/patients/patient/?customer__id__exact={tenant.customer.pk}"
    everyone = client.get(base)
    assert everyone.status_code == 200 and b"Diabetes" in everyone.content  # a filter choice
    ann = Patient.objects.get(first_name="Ann")
    bea = Patient.objects.get(first_name="Bea")
    filtered = client.get(base + f"&cohort={cohort_with_one.pk}")
    assert filtered.status_code == 200
    assert str(ann.pk).encode() in filtered.content and str(bea.pk).encode() not in filtered.content
    junk = client.get(base + "&cohort=junk")
    assert junk.status_code == 200 and str(ann.pk).encode() not in junk.content


def test_patient_page_shows_its_cohorts(support_client, cohort_with_one):
    ann = Patient.objects.get(first_name="Ann")
    page = support_client.get(f"/admin/patients/patient/{ann.pk}/change/")
    assert page.status_code == 200 and b"Diabetes" in page.content


def test_policy_is_set_per_customer(tenant, other_tenant):
    assert services.cohort_policy_creates(customer_id=tenant.customer.id) is False  # the default: reject
    services.cohort_policy_set(customer_id=tenant.customer.id, create_unknown=True)
    assert services.cohort_policy_creates(customer_id=tenant.customer.id) is True
    assert services.cohort_policy_creates(customer_id=other_tenant.customer.id) is False
