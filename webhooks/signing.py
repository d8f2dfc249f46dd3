"""Webhook keys and signatures.

- `x-metriport-signature`: hex HMAC-SHA256 of the raw body, keyed with the webhook key string as UTF-8
  (what the Metriport SDK's `verifyWebhookSignature` computes).
- Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`): base64 HMAC-SHA256 of
  "{id}.{timestamp}.{body}", keyed with the base64-decoded part of the same key after `whsec_`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

KEY_PREFIX = "whsec_"


def webhook_key_generate() -> str:
    return KEY_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def metriport_signature(*, body: bytes, key: str) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def metriport_signature_verify(*, body: bytes, key: str, signature: str) -> bool:
    return hmac.compare_digest(metriport_signature(body=body, key=key), signature)


def standard_secret(key: str) -> bytes:
    """The Standard Webhooks secret of a key: base64 after `whsec_`, else the key's own bytes."""
    if key.startswith(KEY_PREFIX):
        try:
            return base64.b64decode(key[len(KEY_PREFIX) :], validate=True)
        except ValueError:
            pass
    return key.encode()


def standard_signature(*, body: bytes, key: str, message_id: str, timestamp: int) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(standard_secret(key), signed, hashlib.sha256).digest()).decode()


def signature_headers(*, body: bytes, key: str, message_id: str, timestamp: int, standard: bool) -> dict[str, str]:
    """The signature headers of one attempt (the timestamp is the attempt's, the body always the same)."""
    headers = {"x-metriport-signature": metriport_signature(body=body, key=key)}
    if standard:
        headers["webhook-id"] = message_id
        headers["webhook-timestamp"] = str(timestamp)
        headers["webhook-signature"] = standard_signature(
            body=body, key=key, message_id=message_id, timestamp=timestamp
        )
    return headers
