"""The clean reference run the fault tests compare with."""

from __future__ import annotations

import pytest

from tests.helpers.bulk import run_inline, sample_bytes, submit
from tests.helpers.factories import make_tenant
from tests.helpers.reliability import CHUNK, ROWS


@pytest.fixture
def clean_run(broker, settings):
    """The reference: the same file processed without any fault, inline. Request it before any worker fixture
    (`pipeline`): run_inline refuses to race a live worker."""
    settings.BULK_CHUNK_SIZE = int(CHUNK)
    body = sample_bytes(ROWS, invalid_ratio=0.05, seed=77)
    tenant = make_tenant("Clean run")
    request = submit(tenant, body)
    run_inline(request.id)
    broker.flush_all()  # the messages its submit queued were for steps run here: no later worker gets them
    return body, tenant, request
