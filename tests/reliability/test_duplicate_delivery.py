"""Every actor message delivered twice, by the real broker to a real worker: the bulk request ends exactly as
a clean run does, with no duplicate patient, Document Query or webhook message."""

from __future__ import annotations

import uuid

import pytest
from dramatiq.middleware import Middleware

from bulkimport.models import BulkStatus
from docqueries.models import DocumentQuery
from patients.models import Patient
from tests.helpers.bulk import result_rows, sample_bytes, submit, wait_final
from tests.helpers.factories import make_tenant
from tests.helpers.reliability import assert_ids_derived, without_ids
from webhooks.models import WebhookEndpoint, WebhookMessage

pytestmark = pytest.mark.django_db(transaction=True)


class DeliverTwice(Middleware):
    """Re-enqueues every processed message once more, under a new message id (a broker redelivery)."""

    def __init__(self) -> None:
        self.duplicated = 0

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if message.options.get("duplicate"):
            return
        broker.enqueue(message.copy(message_id=str(uuid.uuid4()), options={**message.options, "duplicate": True}))
        self.duplicated += 1


def test_every_message_delivered_twice(broker, worker, settings, receiver):
    settings.BULK_CHUNK_SIZE = 100
    body = sample_bytes(600, invalid_ratio=0.1, seed=31)
    clean_tenant = make_tenant("Clean")
    # The reference goes through the live worker too: run inline, it would race that worker.
    clean = submit(clean_tenant, body)
    assert wait_final(clean.id, timeout=120).status == BulkStatus.COMPLETED

    tenant = make_tenant("Twice")
    WebhookEndpoint.objects.create(customer=tenant.customer, url=f"{receiver.url}/hook", key="k" * 32)
    twice = DeliverTwice()
    broker.add_middleware(twice)
    try:
        request = submit(tenant, body)
        assert wait_final(request.id, timeout=120).status == BulkStatus.COMPLETED
        # Let the duplicates of the last messages run too before counting.
        for queue in ("bulk", "bulk-chunks", "docqueries", "docqueries-express"):
            broker.join(queue, timeout=30_000)
    finally:
        broker.middleware.remove(twice)
    assert twice.duplicated >= 8  # parse, 6 chunks, finish (and more): the fault really happened
    rows = result_rows(request.id)
    assert without_ids(rows) == without_ids(result_rows(clean.id))
    assert_ids_derived(request.id, rows)
    for model in (Patient, DocumentQuery):
        assert (
            model.objects.filter(customer=tenant.customer).count()
            == model.objects.filter(customer=clean_tenant.customer).count()
        )
    bulk_messages = WebhookMessage.objects.filter(
        request_id=str(request.id), message_type="medical.bulk-patient-create"
    )
    assert sorted(bulk_messages.values_list("message_type", flat=True)) == ["medical.bulk-patient-create"] * 2
