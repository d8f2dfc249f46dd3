"""Test settings: the real services first (see devtools.testservices), then the ordinary settings."""

from devtools.testservices import configure_test_services

configure_test_services()

from metriport_bulk.settings import *  # noqa: E402,F403

# Worker, scheduler and live-server threads open their own connections: no persistent ones, so the test
# database can be dropped at the end of the run.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
