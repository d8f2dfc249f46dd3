"""manage.py create_support_user NAME [--phi]: a staff user in Support (PHI included) or in Support without
PHI, who can log in with the printed password and sees what that group allows; refused twice and on an
unmigrated (flushed) database."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from patients.services import SUPPORT_NO_PHI_GROUP

pytestmark = pytest.mark.django_db


def log_in(username: str, password: str) -> Client:
    """Through the admin's login form, as the person would (django-axes needs the request)."""
    client = Client()
    response = client.post(reverse("admin:login"), {"username": username, "password": password, "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/", response.status_code
    return client


def create(*args: str) -> dict[str, str]:
    out = io.StringIO()
    call_command("create_support_user", *args, stdout=out, stderr=io.StringIO())
    return dict(line.split("=", 1) for line in out.getvalue().splitlines())


def test_with_phi_joins_support_and_sees_phi(support_group, completed_request):
    printed = create("alice", "--phi", "--email", "alice@example.com")
    user = get_user_model().objects.get(username="alice")
    assert printed["group"] == "Support" and user.is_staff and not user.is_superuser
    assert list(user.groups.values_list("name", flat=True)) == ["Support"]
    assert user.has_perm("patients.view_phi") and user.email == "alice@example.com"
    client = log_in("alice", printed["password"])
    page = client.get(reverse("admin:bulkimport_bulkrequest_change", args=[completed_request.id]))
    assert page.status_code == 200 and "Download input CSV" in page.content.decode()


def test_without_phi_gets_supports_rights_but_view_phi(support_group, completed_request):
    printed = create("bob")
    user = get_user_model().objects.get(username="bob")
    assert printed["group"] == SUPPORT_NO_PHI_GROUP
    assert not user.has_perm("patients.view_phi")
    assert user.has_perm("bulkimport.view_bulkrequest") and user.has_perm("webhooks.change_webhookmessage")
    support = {p.codename for p in support_group.permissions.all()}
    assert {p.codename for p in user.groups.get().permissions.all()} == support - {"view_phi"}
    client = log_in("bob", printed["password"])
    page = client.get(reverse("admin:bulkimport_bulkrequest_change", args=[completed_request.id]))
    assert page.status_code == 200 and "hidden (no PHI permission)" in page.content.decode()


def test_an_existing_name_is_refused(support_group):
    create("carol")
    with pytest.raises(CommandError, match="exists already"):
        create("carol", "--phi")
    assert get_user_model().objects.filter(username="carol").count() == 1


def test_without_the_support_group_it_says_to_migrate():
    from django.contrib.auth.models import Group

    Group.objects.filter(name="Support").delete()
    with pytest.raises(CommandError, match="migrate"):
        create("dave")
    assert not get_user_model().objects.filter(username="dave").exists()
