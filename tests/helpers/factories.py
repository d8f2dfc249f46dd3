"""Small builders for test data (customers with keys, facilities): devtools' tenants."""

from devtools.tenants import Tenant, make_facility, make_tenant  # noqa: F401
