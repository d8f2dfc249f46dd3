"""Admin helpers: staff users and logged-in clients."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.test import Client

PASSWORD = "correct horse battery staple"


def make_staff(username: str, *, groups: tuple[Group, ...] = (), superuser: bool = False) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True, is_superuser=superuser)
    user.groups.add(*groups)
    return user


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client
