"""retry_webhooks [--message ID] [--customer ID] [--queue]: support's redelivery of webhook messages."""

from __future__ import annotations

import uuid

from django.core.management.base import BaseCommand, CommandError

from webhooks import selectors, services
from webhooks.models import WebhookMessage

EXIT_SOME_FAILED = 2


class Command(BaseCommand):
    help = (
        "Redelivers webhook messages with the same bytes and messageId and a fresh retry window. Without "
        "--message: every failed message and every pending one that already failed (of --customer when given). "
        "Delivers right away in this process unless --queue is given, then leaves it to the workers and the "
        "scheduler. Exit codes: 0 all delivered (or queued), 1 bad arguments or unknown message, "
        "2 some deliveries failed again (they stay scheduled for retry). The report says, for each message not "
        "delivered, why: failed (the receiver's answer), skipped because another deliverer holds it or every "
        "delivery slot of its customer, or still pending (waiting for an earlier message of its bulk request)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--message", metavar="ID", help="Redeliver this message (any status, even delivered).")
        parser.add_argument("--customer", metavar="ID", help="Only this customer's messages.")
        parser.add_argument("--queue", action="store_true", help="Only reschedule; do not deliver in this process.")

    def handle(self, *args, message: str | None, customer: str | None, queue: bool, **options) -> None:
        message_id = _uuid(message, "--message") if message else None
        customer_id = _uuid(customer, "--customer") if customer else None
        if message_id is not None and not WebhookMessage.objects.filter(id=message_id).exists():
            raise CommandError(f"No webhook message {message_id}.")
        ids = services.webhook_redeliver(customer_id=customer_id, message_id=message_id, dispatch=queue)
        if not ids:
            self.stdout.write("No failed webhook messages.")
            return
        if queue:
            self.stdout.write(f"{len(ids)} message(s) rescheduled for delivery.")
            return
        results = services.webhook_deliver_now(message_ids=ids)
        counts = dict.fromkeys(("delivered", "failed", "locked", "pending"), 0)
        for item_id, delivered in results.items():
            if delivered:
                counts["delivered"] += 1
                self.stdout.write(f"{item_id}: delivered")
                continue
            if delivered is False:
                counts["failed"] += 1
                last_error = WebhookMessage.objects.filter(id=item_id).values_list("last_error", flat=True).first()
                self.stdout.write(f"{item_id}: failed ({last_error}); retry scheduled")
                continue
            # No attempt was made: say why (another deliverer, the customer's slots, the order of a request).
            hold = selectors.webhook_message_hold(message_id=item_id)
            counts[hold.outcome] += 1
            label = {
                "delivered": "delivered by another deliverer",
                "failed": "failed",
                "locked": "skipped, locked",
                "pending": "still pending",
            }[hold.outcome]
            self.stdout.write(f"{item_id}: {label}: {hold.reason}")
        self.stdout.write(
            f"{counts['delivered']} delivered, {counts['failed']} failed (retry scheduled), {counts['locked']} "
            f"skipped because another deliverer holds them, {counts['pending']} still pending (the workers and the "
            "scheduler deliver them)."
        )
        if counts["failed"]:
            raise SystemExit(EXIT_SOME_FAILED)


def _uuid(value: str, option: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise CommandError(f"{option} must be a UUID, got {value!r}.") from exc
