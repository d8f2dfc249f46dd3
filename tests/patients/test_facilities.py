"""Facility endpoints: validation (NPI check digit, address, `active` a JSON boolean), isolation, update,
pagination."""

import pytest

from patients.models import Facility
from patients.validators import npi_is_valid, npi_with_check_digit
from tests.helpers.api import client_for

pytestmark = pytest.mark.django_db

ADDRESS = {"addressLine1": "2 Oak Ave", "city": "Austin", "state": "texas", "zip": "78701-1234", "country": "USA"}


@pytest.mark.parametrize(
    ("npi", "valid"),
    [
        ("1234567893", True),
        ("1234567890", False),
        ("123456789", False),
        ("12345678931", False),
        ("abcdefghij", False),
        ("\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0663", False),  # Arabic-Indic digits
        ("\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff13", False),  # fullwidth digits
        ("1245319599", True),
        ("\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0663", False),  # Arabic-Indic 1234567893
        ("\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff13", False),  # fullwidth 1234567893
        ("123456789\u0663", False),  # one Arabic-Indic digit
        ("\u00b9234567893", False),  # superscript one: isdigit() but not a decimal digit
    ],
)
def test_npi_luhn_check_digit(npi, valid):
    assert npi_is_valid(npi) is valid


@pytest.mark.parametrize(
    "npi",
    [
        "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0663",
        "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff13",
    ],
)
def test_facility_with_non_ascii_npi_digits_is_400(api, npi):
    response = api.post("/medical/v1/facility", {"name": "X", "npi": npi, "address": ADDRESS}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("npi:")


def test_npi_with_check_digit_round_trips():
    assert npi_is_valid(npi_with_check_digit("987654321"))


def test_create_facility_normalizes_address(api):
    response = api.post(
        "/medical/v1/facility", {"name": "North", "npi": "1234567893", "address": ADDRESS}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["address"]["state"] == "TX"
    assert body["address"]["zip"] == "78701"
    assert body["active"] is True
    assert api.get(f"/medical/v1/facility/{body['id']}").json()["name"] == "North"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "X", "npi": "1234567890", "address": ADDRESS}, "npi"),
        ({"name": "X", "npi": "1234567893", "address": {**ADDRESS, "state": "Narnia"}}, "address.state"),
        ({"name": "X", "npi": "1234567893", "address": {**ADDRESS, "zip": "abc"}}, "address.zip"),
        ({"name": "X", "npi": "1234567893", "address": {**ADDRESS, "country": "CAN"}}, "address.country"),
        ({"npi": "1234567893", "address": ADDRESS}, "name"),
        ({"name": "X", "npi": "1234567893"}, "address"),
    ],
)
def test_invalid_facility_is_400_naming_the_field(api, payload, field):
    response = api.post("/medical/v1/facility", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["name"] == "BadRequestError"
    assert body["detail"].startswith(f"{field}:")


@pytest.mark.parametrize("value", ["yes", "1", 1, 0, "true"])
def test_active_must_be_a_json_boolean(api, tenant, value):
    body = {"name": "Renamed", "npi": "1234567893", "active": value, "address": ADDRESS}
    refused = {"status": 400, "name": "BadRequestError", "title": "Bad request"}
    refused["detail"] = "active: Must be a JSON boolean: true or false."
    created = api.post("/medical/v1/facility", body, format="json")
    assert created.status_code == 400 and created.json() == refused
    updated = api.put(f"/medical/v1/facility/{tenant.facility.id}", body, format="json")
    assert updated.status_code == 400 and updated.json() == refused
    assert list(Facility.objects.values_list("name", "active")) == [("Main Clinic", True)]


@pytest.mark.parametrize("value", [True, False])
def test_active_takes_json_booleans(api, tenant, value):
    body = {"name": "North", "npi": "1234567893", "active": value, "address": ADDRESS}
    created = api.post("/medical/v1/facility", body, format="json")
    assert created.status_code == 201 and created.json()["active"] is value
    updated = api.put(f"/medical/v1/facility/{tenant.facility.id}", {**body, "active": not value}, format="json")
    assert updated.status_code == 200 and updated.json()["active"] is (not value)
    assert Facility.objects.get(id=created.json()["id"]).active is value
    assert Facility.objects.get(id=tenant.facility.id).active is (not value)


def test_active_null_is_read_as_absent(api, tenant):
    """Metriport's facility schema has `active` nullable, and the Python SDK sends null for `active=None`."""
    body = {"name": "North", "npi": "1234567893", "active": None, "address": ADDRESS}
    created = api.post("/medical/v1/facility", body, format="json")
    assert created.status_code == 201 and created.json()["active"] is True
    url = f"/medical/v1/facility/{tenant.facility.id}"
    assert api.put(url, {**body, "active": False}, format="json").json()["active"] is False
    updated = api.put(url, body, format="json")
    assert updated.status_code == 200 and updated.json()["active"] is True  # as a PUT without it


def test_tin_null_is_read_as_absent(api, tenant):
    """@metriport/api-sdk's facility schema has `tin` nullable, and the Python SDK sends null for `tin=None`:
    no TIN, stored empty as when it is left out."""
    body = {"name": "North", "npi": "1234567893", "tin": None, "address": ADDRESS}
    created = api.post("/medical/v1/facility", body, format="json")
    assert created.status_code == 201 and created.json()["tin"] == ""
    assert Facility.objects.get(id=created.json()["id"]).tin == ""
    url = f"/medical/v1/facility/{tenant.facility.id}"
    assert api.put(url, {**body, "tin": "12-3456789"}, format="json").json()["tin"] == "12-3456789"
    updated = api.put(url, body, format="json")
    assert updated.status_code == 200 and updated.json()["tin"] == ""  # as a PUT without it
    assert Facility.objects.get(id=tenant.facility.id).tin == ""


@pytest.mark.parametrize("value", [["12-3456789"], {"tin": "12-3456789"}, True])
def test_tin_must_be_a_string_or_null(api, tenant, value):
    body = {"name": "Renamed", "npi": "1234567893", "tin": value, "address": ADDRESS}
    for response in (
        api.post("/medical/v1/facility", body, format="json"),
        api.put(f"/medical/v1/facility/{tenant.facility.id}", body, format="json"),
    ):
        assert response.status_code == 400
        assert response.json()["name"] == "BadRequestError"
        assert response.json()["detail"] == "tin: Not a valid string."
    assert list(Facility.objects.values_list("name", "tin")) == [("Main Clinic", "")]


def test_address_country_and_line2_null_are_read_as_absent(api, tenant):
    """The Python SDK sends null for `Address(address_line_2=None, country=None)`; a patient's address reads
    both so already."""
    address = {**ADDRESS, "addressLine2": None, "country": None}
    body = {"name": "North", "npi": "1234567893", "address": address}
    created = api.post("/medical/v1/facility", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["address"] == {
        "addressLine1": "2 Oak Ave",
        "city": "Austin",
        "state": "TX",
        "zip": "78701",
        "country": "USA",
    }
    updated = api.put(f"/medical/v1/facility/{tenant.facility.id}", body, format="json")
    assert updated.status_code == 200 and updated.json()["address"] == created.json()["address"]
    assert Facility.objects.get(id=tenant.facility.id).address["country"] == "USA"


def test_malformed_json_is_400(api):
    response = api.generic("POST", "/medical/v1/facility", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["name"] == "BadRequestError"


def test_update_facility(api, tenant):
    url = f"/medical/v1/facility/{tenant.facility.id}"
    response = api.put(
        url, {"name": "Renamed", "npi": "1234567893", "active": False, "address": ADDRESS}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "Renamed" and response.json()["active"] is False


def test_other_customers_facility_is_404_like_unknown(api, other_tenant):
    foreign = api.get(f"/medical/v1/facility/{other_tenant.facility.id}")
    unknown = api.get("/medical/v1/facility/00000000-0000-0000-0000-000000000000")
    garbage = api.get("/medical/v1/facility/not-an-id")
    assert foreign.status_code == unknown.status_code == garbage.status_code == 404
    assert foreign.json()["name"] == "NotFoundError"
    put = api.put(
        f"/medical/v1/facility/{other_tenant.facility.id}",
        {"name": "x", "npi": "1234567893", "address": ADDRESS},
        format="json",
    )
    assert put.status_code == 404
    other_tenant.facility.refresh_from_db()
    assert other_tenant.facility.name != "x"


def test_list_only_own_facilities_cursor_paginated(api, tenant, other_tenant):
    for i in range(3):
        api.post("/medical/v1/facility", {"name": f"F{i}", "npi": "1234567893", "address": ADDRESS}, format="json")
    first = api.get("/medical/v1/facility", {"count": 2}).json()
    assert first["meta"]["itemsOnPage"] == 2 and first["meta"]["nextPage"]
    second = client_for(tenant.api_key).get(first["meta"]["nextPage"]).json()
    names = {f["name"] for f in first["facilities"] + second["facilities"]}
    assert names == {"F0", "F1", "F2", "Main Clinic"}
    assert str(other_tenant.facility.id) not in {f["id"] for f in first["facilities"] + second["facilities"]}


def test_create_facility_command_validates(tenant, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    def create(npi: str) -> None:
        call_command(
            "create_facility",
            str(tenant.customer.id),
            *(
                "--name",
                "B",
                "--npi",
                npi,
                "--address-line1",
                "1 A St",
                "--city",
                "X",
                "--state",
                "CA",
                "--zip",
                "90210",
            ),
        )

    with pytest.raises(CommandError, match="npi"):
        create("1234567890")
    create("1234567893")
    assert capsys.readouterr().out.startswith("facility_id=")


def test_facility_dto_has_etag_and_a_stable_oid_and_omits_an_empty_address_line2(api, tenant):
    created = api.post(
        "/medical/v1/facility", {"name": "North", "npi": "1234567893", "address": ADDRESS}, format="json"
    ).json()
    assert list(created) == ["id", "eTag", "oid", "name", "npi", "tin", "active", "address"]
    assert "addressLine2" not in created["address"]
    arcs = created["oid"].split(".")
    assert all(arc.isdigit() for arc in arcs) and arcs[-2] == "5"
    assert created["oid"].startswith("2.25.")
    again = api.get(f"/medical/v1/facility/{created['id']}").json()
    assert again["oid"] == created["oid"] and again["eTag"] == created["eTag"]
    updated = api.put(
        f"/medical/v1/facility/{created['id']}",
        {"name": "North 2", "npi": "1234567893", "address": ADDRESS},
        format="json",
    ).json()
    assert updated["oid"] == created["oid"] and updated["eTag"] != created["eTag"]
    other = api.post("/medical/v1/facility", {"name": "South", "npi": "1245319599", "address": ADDRESS}, format="json")
    assert other.json()["oid"] != created["oid"]
    listed = api.get("/medical/v1/facility").json()
    assert all("addressLine2" not in f["address"] for f in listed["facilities"])
