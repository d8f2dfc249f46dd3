"""Tenants for tests and benches: a customer with an API key and a facility."""

from __future__ import annotations

from dataclasses import dataclass

from devtools.sample import SAMPLE_FACILITY_ADDRESS
from patients.models import Customer, Facility
from patients.services import api_key_create, customer_create, facility_create
from patients.validators import npi_with_check_digit


@dataclass
class Tenant:
    customer: Customer
    api_key: str
    facility: Facility


def make_facility(customer: Customer, name: str = "Main Clinic", npi_body: str = "123456789") -> Facility:
    return facility_create(
        customer=customer,
        name=name,
        npi=npi_with_check_digit(npi_body),
        address=dict(SAMPLE_FACILITY_ADDRESS),
    )


def make_tenant(name: str = "Acme Health") -> Tenant:
    customer = customer_create(name=name)
    return Tenant(
        customer=customer, api_key=api_key_create(customer=customer).clear_key, facility=make_facility(customer)
    )
