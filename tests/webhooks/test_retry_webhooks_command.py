"""`manage.py retry_webhooks [--message ID] [--customer ID] [--queue]`: help, exit codes, redelivery."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.helpers.receiver import Reply
from tests.helpers.webhooks import create_message
from webhooks.management.commands.retry_webhooks import Command
from webhooks.models import DeliverySlot, MessageStatus, WebhookEndpoint, WebhookMessage


def _fail(message) -> None:
    WebhookMessage.objects.filter(id=message.id).update(status=MessageStatus.FAILED, next_attempt_at=None, failures=40)


def _run(*args) -> str:
    out = io.StringIO()
    call_command("retry_webhooks", *args, stdout=out)
    return out.getvalue()


def test_help_explains_the_options_and_exit_codes():
    text = Command().create_parser("manage.py", "retry_webhooks").format_help()
    assert "--message ID" in text and "--customer ID" in text and "--queue" in text
    assert "Exit codes: 0" in text


def test_one_message_is_redelivered_in_process_with_the_same_bytes(endpoint, tenant, receiver):
    message = create_message(tenant.customer.id)
    _fail(message)
    output = _run("--message", str(message.id))
    assert f"{message.id}: delivered" in output
    (request,) = receiver.snapshot()
    assert request.body == bytes(message.body)
    assert WebhookMessage.objects.get(id=message.id).status == MessageStatus.DELIVERED


def test_every_failed_message_is_redelivered_and_customer_narrows_it(endpoint, tenant, other_tenant, receiver):
    WebhookEndpoint.objects.create(customer=other_tenant.customer, url=f"{receiver.url}/other", key="k2")
    mine, theirs = create_message(tenant.customer.id), create_message(other_tenant.customer.id)
    _fail(mine)
    _fail(theirs)
    assert "1 delivered, 0 failed" in _run("--customer", str(tenant.customer.id))
    assert WebhookMessage.objects.get(id=theirs.id).status == MessageStatus.FAILED
    assert "1 delivered, 0 failed" in _run()
    assert WebhookMessage.objects.filter(status=MessageStatus.DELIVERED).count() == 2
    assert _run() == "No failed webhook messages.\n"


def test_exit_code_2_when_a_redelivery_fails_again(endpoint, tenant, receiver):
    receiver.replies = [Reply(status=500)]
    message = create_message(tenant.customer.id)
    _fail(message)
    with pytest.raises(SystemExit) as exit_info:
        _run("--message", str(message.id))
    assert exit_info.value.code == 2
    message.refresh_from_db()
    assert message.status == MessageStatus.PENDING and message.failures == 1 and message.next_attempt_at


def test_queue_only_reschedules(endpoint, tenant, receiver):
    message = create_message(tenant.customer.id)
    _fail(message)
    assert "1 message(s) rescheduled" in _run("--queue")
    assert receiver.snapshot() == []
    assert WebhookMessage.objects.get(id=message.id).status == MessageStatus.PENDING


def test_unknown_or_malformed_message_ids_are_errors_with_exit_code_1(db):
    with pytest.raises(CommandError, match="No webhook message"):
        _run("--message", str(uuid.uuid4()))
    with pytest.raises(CommandError, match="must be a UUID"):
        _run("--message", "nope")
    assert CommandError("x").returncode == 1


def test_the_report_counts_each_outcome_and_says_why(endpoint, tenant, receiver, settings):
    """delivered / failed / skipped because locked / still pending, each with its reason: a message whose
    customer's slots a stopped deliverer still holds is 'skipped, locked' (with the time the leases end),
    one waiting for an earlier message of its bulk request is 'still pending' (naming that message)."""
    settings.WEBHOOK_MAX_CONCURRENT_PER_CUSTOMER = 1
    delivered = create_message(tenant.customer.id)
    _fail(delivered)
    output = _run()
    assert f"{delivered.id}: delivered" in output
    assert output.endswith(
        "1 delivered, 0 failed (retry scheduled), 0 skipped because another deliverer holds them, "
        "0 still pending (the workers and the scheduler deliver them).\n"
    )

    # Every slot of the customer leased by a deliverer that stopped: nothing can be sent before it runs out.
    locked = create_message(tenant.customer.id)
    _fail(locked)
    until = timezone.now() + timedelta(minutes=1)
    DeliverySlot.objects.update_or_create(
        customer_id=tenant.customer.id, number=0, defaults={"leased_until": until, "message_id": uuid.uuid4()}
    )
    output = _run()
    assert f"{locked.id}: skipped, locked: all 1 delivery slots of its customer are held" in output
    assert f"{until:%H:%M:%S} UTC" in output
    assert "0 delivered, 0 failed (retry scheduled), 1 skipped because another deliverer holds them" in output
    DeliverySlot.objects.all().delete()
    _run()

    # The second message of a bulk request waits for the first, which is not due yet (its own retry later).
    first = create_message(tenant.customer.id, message_type="medical.bulk-patient-create", request_id="r-1")
    second = create_message(tenant.customer.id, message_type="medical.bulk-patient-create", request_id="r-1")
    WebhookMessage.objects.filter(id=first.id).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    _fail(second)
    output = _run("--message", str(second.id))
    assert f"{second.id}: still pending: waits for message {first.id} of the same bulk request" in output
    assert "0 delivered, 0 failed (retry scheduled), 0 skipped because another deliverer holds them, 1 still" in output
    assert not any(bytes(second.body) == item.body for item in receiver.snapshot())
