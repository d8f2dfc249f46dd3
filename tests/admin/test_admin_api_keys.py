"""Creating an API key in the admin: the clear key is shown once, only its hash is stored, never displayed."""

from __future__ import annotations

import re

from django.urls import reverse

from patients.models import ApiKey
from patients.services import api_key_authenticate


def test_new_key_is_shown_once_and_works(tenant, operator_client):
    response = operator_client.post(
        reverse("admin:patients_apikey_add"), {"customer": str(tenant.customer.id), "name": "ehr-sync"}, follow=True
    )
    html = response.content.decode()
    assert response.status_code == 200
    clear_key = re.search(r"<code>(mbk_[^<]+)</code>", html).group(1)
    api_key = ApiKey.objects.get(name="ehr-sync")
    assert api_key_authenticate(raw_key=clear_key) == api_key
    assert clear_key not in api_key.hashed_key and len(api_key.hashed_key) == 64
    assert api_key.hashed_key not in html
    # Shown once: the next page no longer has it, and the key's own page shows no secret at all.
    again = operator_client.get(reverse("admin:patients_apikey_changelist")).content.decode()
    assert clear_key not in again and api_key.hashed_key not in again
    detail = operator_client.get(reverse("admin:patients_apikey_change", args=[api_key.id])).content.decode()
    assert clear_key not in detail and api_key.hashed_key not in detail and api_key.prefix in detail


def test_add_form_asks_only_for_customer_and_name(operator_client):
    form = operator_client.get(reverse("admin:patients_apikey_add")).context["adminform"].form
    assert list(form.fields) == ["customer", "name"]


def test_customer_and_facility_created_through_the_admin(operator_client):
    response = operator_client.post(reverse("admin:patients_customer_add"), {"name": "  New Clinic  "}, follow=True)
    assert response.status_code == 200
    from patients.models import Customer, Facility
    from patients.validators import npi_with_check_digit

    customer = Customer.objects.get(name="New Clinic")
    bad = operator_client.post(
        reverse("admin:patients_facility_add"),
        {
            "customer": str(customer.id),
            "name": "North",
            "npi": "1234567890",
            "tin": "",
            "active": "on",
            "address": '{"zip": "10001"}',
        },
    )
    assert "valid check digit" in bad.content.decode()
    operator_client.post(
        reverse("admin:patients_facility_add"),
        {
            "customer": str(customer.id),
            "name": "North",
            "npi": npi_with_check_digit("123456789"),
            "tin": "",
            "active": "on",
            "address": '{"zip": "10001"}',
        },
    )
    assert Facility.objects.get(customer=customer).name == "North"
