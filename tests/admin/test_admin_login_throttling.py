"""Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords the account is locked, even for the
right password; other accounts and the API key authentication are unaffected."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from tests.helpers.admin import PASSWORD, make_staff

LOGIN = reverse("admin:login")


def login(username: str, password: str):
    return Client().post(LOGIN, {"username": username, "password": password, "next": reverse("admin:index")})


def logged_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == reverse("admin:index")


@pytest.fixture
def staff(db):
    return make_staff("alice"), make_staff("bob")


def test_right_password_logs_in(staff):
    assert logged_in(login("alice", PASSWORD))


def test_six_wrong_passwords_then_the_right_one_is_refused(staff):
    assert settings.AXES_FAILURE_LIMIT == 5
    answers = [login("alice", f"wrong-{attempt}").status_code for attempt in range(6)]
    assert answers[:4] == [200] * 4  # the login form again, with its error
    assert answers[-1] == 429
    refused = login("alice", PASSWORD)
    assert refused.status_code == 429 and not logged_in(refused)
    # Another account, from the same address, logs in.
    assert logged_in(login("bob", PASSWORD))


def test_a_success_resets_the_count(staff):
    for attempt in range(4):
        login("alice", f"wrong-{attempt}")
    assert logged_in(login("alice", PASSWORD))
    for attempt in range(4):
        login("alice", f"wrong-again-{attempt}")
    assert logged_in(login("alice", PASSWORD))


def test_api_key_authentication_is_not_throttled(staff, tenant, api):
    for attempt in range(6):
        login("alice", f"wrong-{attempt}")
    bad = Client().get("/medical/v1/patient/bulk", HTTP_X_API_KEY="mbk_not-a-key")
    for _ in range(10):
        assert Client().get("/medical/v1/patient/bulk", HTTP_X_API_KEY="mbk_not-a-key").status_code == bad.status_code
    assert bad.status_code in (401, 403)
    assert api.get("/medical/v1/patient/bulk").status_code == 200
