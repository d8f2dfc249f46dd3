"""A local webhook receiver for trying the service out (docs/quickstart.sh): answers the settings ping with
its pong, accepts every message and prints one line per message (type, ids, status: webhook payloads carry
no PHI). Checks each signature against --key when given."""

from __future__ import annotations

import hashlib
import hmac
import json

from django.core.management.base import BaseCommand

from devtools.receiver import Receiver


def describe(payload: dict) -> str:
    meta = payload.get("meta") or {}
    kind = meta.get("type", "?")
    if kind == "medical.bulk-patient-create":
        bulk = payload.get("bulkPatientCreate") or {}
        return f"{kind} requestId={bulk.get('requestId')} status={bulk.get('status')}"
    if kind == "medical.document-download":
        patients = payload.get("patients") or []
        return f"{kind} patients={len(patients)}"
    return kind


class Command(BaseCommand):
    help = "Runs a local webhook receiver on 127.0.0.1:PORT that answers pings and prints what it receives."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8099)
        parser.add_argument("--key", default="", help="the webhookKey of GET /settings, to check signatures")

    def handle(self, *args, port: int, key: str, **options):
        receiver = Receiver(port=port).start()
        self.stdout.write(f"webhook receiver listening on {receiver.url}", ending="\n")
        self.stdout.flush()
        seen = 0
        try:
            while True:
                with receiver.condition:

                    def arrived(count: int = seen) -> bool:
                        return len(receiver.received) > count

                    receiver.condition.wait_for(arrived, timeout=1.0)
                    new = receiver.received[seen:]
                seen += len(new)
                for item in new:
                    if item.method != "POST":
                        continue  # a probe (`curl http://127.0.0.1:PORT/`), not a webhook
                    try:
                        payload = json.loads(item.body or b"{}")
                    except ValueError:
                        payload = {}
                    line = describe(payload) if isinstance(payload, dict) else "?"
                    if key:
                        expected = hmac.new(key.encode(), item.body, hashlib.sha256).hexdigest()
                        good = hmac.compare_digest(expected, item.headers.get("x-metriport-signature", ""))
                        line += " signature=" + ("ok" if good else "BAD")
                    self.stdout.write(line)
                    self.stdout.flush()
        except KeyboardInterrupt:
            pass
        finally:
            receiver.stop()
