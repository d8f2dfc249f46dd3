"""Support actions go through the services; their effects land in the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin import helpers
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from bulkimport import services
from bulkimport.models import BulkRequest, BulkRow, BulkStatus, RowStatus
from docqueries.models import DocumentQuery
from docqueries.services import budget_set
from patients.models import ApiKey
from webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage
from webhooks.services import webhook_message_create


def action_url(name: str, bulk_request: BulkRequest) -> str:
    return reverse(f"admin:bulkimport_bulkrequest_{name}", args=[bulk_request.id])


# Reprocessing runs on the web process's connection, not on the one that ran the pipeline (a worker's): a
# transactional test that closes the test's connection before the request (the test client keeps it otherwise),
# the Support group re-made for it by its fixture (serialized_rollback would clash with the content types
# a previous transactional test's flush re-created).
in_own_connection = pytest.mark.django_db(transaction=True)


def as_fresh_web_connection() -> None:
    connection.close()


def break_a_row(bulk_request: BulkRequest) -> BulkRow:
    """What a normalizer bug looks like: a valid row stored as failed."""
    row = BulkRow.objects.filter(request=bulk_request, status=RowStatus.SUCCEEDED).order_by("number").first()
    BulkRow.objects.filter(id=row.id).update(status=RowStatus.FAILED, action="", patient=None, reason="bug")
    BulkRequest.objects.filter(id=bulk_request.id).update(
        successful=bulk_request.successful - 1, failed=bulk_request.failed + 1
    )
    return row


@in_own_connection
def test_reprocess_failed_rows_fixes_them(completed_request, operator_client):
    row = break_a_row(completed_request)
    as_fresh_web_connection()
    response = operator_client.post(action_url("reprocess", completed_request), {"failed_only": "1"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:bulkimport_bulkrequest_change", args=[completed_request.id])
    message = [str(m) for m in response.context["messages"]][0]
    assert "reprocessed" in message and f"re-validated {completed_request.failed + 1} row(s), applied 1" in message
    row.refresh_from_db()
    assert row.status == RowStatus.SUCCEEDED and row.patient_id is not None
    completed_request.refresh_from_db()
    assert (
        completed_request.failed == BulkRow.objects.filter(request=completed_request, status=RowStatus.FAILED).count()
    )


@in_own_connection
def test_reprocess_all_from_the_changelist_action(completed_request, operator_client):
    row = break_a_row(completed_request)
    as_fresh_web_connection()
    response = operator_client.post(
        reverse("admin:bulkimport_bulkrequest_changelist"),
        {"action": "reprocess_all", helpers.ACTION_CHECKBOX_NAME: [str(completed_request.id)]},
        follow=True,
    )
    assert f"re-validated {completed_request.total} row(s)" in response.content.decode()
    row.refresh_from_db()
    assert row.status == RowStatus.SUCCEEDED


def test_reprocess_refused_for_a_waiting_request(tenant, operator_client):
    waiting = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    response = operator_client.post(action_url("reprocess", waiting), {"failed_only": "0"}, follow=True)
    assert "cannot be reprocessed" in response.content.decode()


def test_resend_webhook_creates_a_new_message(completed_request, operator_client):
    WebhookEndpoint.objects.create(customer=completed_request.customer, url="http://127.0.0.1:9/hook", key="k" * 32)
    response = operator_client.post(action_url("resend", completed_request), follow=True)
    assert "webhook resent with status completed" in response.content.decode()
    message = WebhookMessage.objects.get(request_id=str(completed_request.id))
    assert b'"status":"completed"' in bytes(message.body)


def test_expire_a_waiting_request(tenant, operator_client):
    waiting = services.bulk_request_create(customer=tenant.customer, facility_id=None, dry_run=False)
    response = operator_client.post(action_url("expire", waiting), follow=True)
    assert "expired: its upload URL is no longer accepted" in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.status == BulkStatus.EXPIRED


def test_expire_leaves_a_completed_request_alone(completed_request, operator_client):
    response = operator_client.post(action_url("expire", completed_request), follow=True)
    assert "only waiting requests expire" in response.content.decode()
    completed_request.refresh_from_db()
    assert completed_request.status == BulkStatus.COMPLETED


def test_read_only_support_cannot_act(completed_request, support_client):
    break_a_row(completed_request)
    for name in ("reprocess", "resend", "expire"):
        assert support_client.post(action_url(name, completed_request)).status_code == 403
    assert support_client.get(action_url("expire", completed_request)).status_code in (403, 405)
    assert BulkRow.objects.filter(request=completed_request, status=RowStatus.FAILED, reason="bug").exists()


def test_actions_need_post(completed_request, operator_client):
    assert operator_client.get(action_url("reprocess", completed_request)).status_code == 405


def test_operator_sees_the_action_buttons(completed_request, operator_client):
    html = operator_client.get(
        reverse("admin:bulkimport_bulkrequest_change", args=[completed_request.id])
    ).content.decode()
    assert "bulk-reprocess-failed" in html and "bulk-resend-webhook" in html and "bulk-expire" not in html


def test_redeliver_selected_webhook_messages(tenant, operator_client):
    WebhookEndpoint.objects.create(customer=tenant.customer, url="http://127.0.0.1:9/hook", key="k" * 32)
    message = webhook_message_create(customer_id=tenant.customer.id, message_type="ping", data={"ping": "x"})
    long_ago = timezone.now() - timedelta(days=2)
    WebhookMessage.objects.filter(id=message.id).update(
        status=MessageStatus.FAILED, failures=9, next_attempt_at=None, give_up_at=long_ago
    )
    response = operator_client.post(
        reverse("admin:webhooks_webhookmessage_changelist"),
        {"action": "redeliver", helpers.ACTION_CHECKBOX_NAME: [str(message.id)]},
        follow=True,
    )
    assert "1 message(s) scheduled for redelivery" in response.content.decode()
    message.refresh_from_db()
    assert message.status == MessageStatus.PENDING and message.failures == 0
    assert message.give_up_at > timezone.now() and message.next_attempt_at <= timezone.now()


def test_revoke_api_keys(tenant, operator_client):
    key = ApiKey.objects.get(customer=tenant.customer)
    operator_client.post(
        reverse("admin:patients_apikey_changelist"),
        {"action": "revoke_keys", helpers.ACTION_CHECKBOX_NAME: [str(key.id)]},
    )
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_support_staff_redeliver_a_failed_webhook_message(tenant, support_client):
    """SPEC §4: support can redeliver; the message itself stays read-only for them."""
    WebhookEndpoint.objects.create(customer=tenant.customer, url="http://127.0.0.1:9/hook", key="k")
    message = webhook_message_create(customer_id=tenant.customer.id, message_type="ping", data={"ping": "x"})
    WebhookMessage.objects.filter(id=message.id).update(status=MessageStatus.FAILED)
    response = support_client.post(
        reverse("admin:webhooks_webhookmessage_changelist"),
        {"action": "redeliver", helpers.ACTION_CHECKBOX_NAME: [str(message.id)]},
        follow=True,
    )
    assert "1 message(s) scheduled for redelivery" in response.content.decode()
    assert WebhookMessage.objects.get(id=message.id).status == MessageStatus.PENDING


def test_reprocess_of_a_large_request_is_queued_on_a_worker(
    completed_request, operator, operator_client, settings, django_capture_on_commit_callbacks, monkeypatch
):
    """Above ADMIN_INLINE_REPROCESS_ROWS the admin does not reprocess inside the web request."""
    from bulkimport import tasks

    sent = []
    monkeypatch.setattr(tasks.bulk_reprocess, "send", lambda *args: sent.append(args))
    monkeypatch.setattr(services, "bulk_request_reprocess", lambda **kwargs: pytest.fail("ran inline"))
    settings.ADMIN_INLINE_REPROCESS_ROWS = completed_request.total - 1
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(action_url("reprocess", completed_request), {"failed_only": "0"}, follow=True)
    assert "queued on a worker" in response.content.decode()
    assert sent == [(str(completed_request.id), False, operator.pk)]


@in_own_connection
def test_queued_reprocess_actor_runs_the_service(completed_request):
    from bulkimport import tasks

    row = break_a_row(completed_request)
    tasks.bulk_reprocess.fn(str(completed_request.id), True)
    row.refresh_from_db()
    assert row.status == RowStatus.SUCCEEDED


@in_own_connection
def test_a_queued_reprocess_refused_by_the_budget_is_logged_and_shown_on_the_request_page(
    completed_request, operator, operator_client, settings, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    """The worker's refusal reaches the staff member who queued it: the request's page shows it (its history),
    the worker's log has it; neither names a patient. The request stays as it was."""
    from bulkimport import tasks

    # A bug failed a row that queries its patient, after the patient was written, before its query started.
    row = (
        BulkRow.objects.filter(request=completed_request, status=RowStatus.SUCCEEDED, normalized__hieOptOut=False)
        .order_by("number")
        .first()
    )
    BulkRow.objects.filter(id=row.id).update(status=RowStatus.FAILED, action="", patient=None, reason="bug")
    DocumentQuery.objects.filter(bulk_request_id=completed_request.id, patient_id=row.patient_id).delete()
    budget_set(customer_id=completed_request.customer_id, per_request=0, per_day=None)
    sent = []
    monkeypatch.setattr(tasks.bulk_reprocess, "send", lambda *args: sent.append(args))
    settings.ADMIN_INLINE_REPROCESS_ROWS = 0
    as_fresh_web_connection()
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(action_url("reprocess", completed_request), {"failed_only": "1"})
    before = BulkRequest.objects.filter(id=completed_request.id).values().get()

    tasks.bulk_reprocess.fn(*sent[0])  # the worker

    assert BulkRequest.objects.filter(id=completed_request.id).values().get() == before
    reason = "Document Query budget: this reprocess would start 1 Document Queries"
    logged = [r.getMessage() for r in caplog.records if "queued reprocess refused" in r.getMessage()]
    assert len(logged) == 1 and str(completed_request.id) in logged[0] and reason in logged[0]
    page = operator_client.get(reverse("admin:bulkimport_bulkrequest_change", args=[completed_request.id]))
    html = page.content.decode()
    assert "Reprocess of failed rows" in html and f"Queued reprocess refused: {reason}" in html
    assert operator.get_username() in html
    history = operator_client.get(reverse("admin:bulkimport_bulkrequest_history", args=[completed_request.id]))
    assert history.status_code == 200 and f"Queued reprocess refused: {reason}" in history.content.decode()
    names = BulkRow.objects.filter(request=completed_request).values_list("raw", flat=True)
    first_names = {raw[completed_request.header.index("firstName")] for raw in names} - {""}
    assert not any(name in logged[0] for name in first_names)
