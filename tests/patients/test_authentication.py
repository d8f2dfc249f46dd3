"""x-api-key authentication: missing, wrong, revoked and valid keys; keys stored hashed."""

import pytest

from patients.models import ApiKey
from patients.services import api_key_authenticate, api_key_create, api_key_revoke
from tests.helpers.api import client_for

pytestmark = pytest.mark.django_db


def test_missing_key_is_401_with_envelope(tenant):
    response = client_for(None).get("/medical/v1/facility")
    assert response.status_code == 401
    assert response.json() == {
        "status": 401,
        "name": "UnauthorizedError",
        "title": "Unauthorized",
        "detail": "Authentication credentials were not provided.",
    }


@pytest.mark.parametrize("bad_key", ["nope", "mbk_000000000000_xyz", "", "mbk__", "mbk_a_b_c"])
def test_wrong_key_is_401(tenant, bad_key):
    response = client_for(bad_key).get("/medical/v1/facility")
    assert response.status_code == 401
    assert response.json()["name"] == "UnauthorizedError"


def test_right_prefix_wrong_secret_is_401(tenant):
    prefix = tenant.api_key.split("_")[1]
    response = client_for(f"mbk_{prefix}_not-the-secret").get("/medical/v1/facility")
    assert response.status_code == 401


def test_valid_key_authenticates_and_is_stored_hashed(tenant, api):
    assert api.get("/medical/v1/facility").status_code == 200
    stored = ApiKey.objects.get(customer=tenant.customer)
    assert tenant.api_key not in (stored.hashed_key, stored.prefix)
    assert len(stored.hashed_key) == 64
    assert stored.last_used_at is not None


def test_revoked_key_is_refused(tenant):
    key = api_key_create(customer=tenant.customer, name="temp")
    assert api_key_authenticate(raw_key=key.clear_key) == key.api_key
    api_key_revoke(api_key=key.api_key)
    assert api_key_authenticate(raw_key=key.clear_key) is None
    assert client_for(key.clear_key).get("/medical/v1/facility").status_code == 401


def test_create_customer_and_key_commands_print_key_once(db, capsys):
    from django.core.management import call_command

    call_command("create_customer", "Cmd Health", "--with-key")
    out = capsys.readouterr().out
    key = next(line.split("=", 1)[1] for line in out.splitlines() if line.startswith("api_key="))
    customer_id = next(line.split("=", 1)[1] for line in out.splitlines() if line.startswith("customer_id="))
    assert client_for(key).get("/medical/v1/facility").status_code == 200
    call_command("create_api_key", customer_id, "--name", "second")
    second = capsys.readouterr().out.strip().split("=", 1)[1]
    assert second != key and client_for(second).get("/medical/v1/facility").status_code == 200


def test_create_api_key_unknown_customer_fails(db):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No customer"):
        call_command("create_api_key", "not-a-uuid")
