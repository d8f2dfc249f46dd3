"""Test settings: the real services first (see devtools.testservices), then the ordinary settings."""

from metriport_bulk.devtools.testservices import configure_test_services

configure_test_services()

from metriport_bulk.settings import *  # noqa: E402,F403
