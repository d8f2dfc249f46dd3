"""Signatures are checked against independent HMAC computations, not against the module's own helpers."""

from __future__ import annotations

import base64
import hashlib
import hmac

from webhooks import signing


def test_generated_keys_are_unique_standard_webhooks_secrets():
    keys = {signing.webhook_key_generate() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert key.startswith("whsec_")
        assert len(base64.b64decode(key[len("whsec_") :])) == 32


def test_metriport_signature_is_hex_hmac_sha256_of_the_raw_body_with_the_key_string():
    body = b'{"meta":{"type":"ping"},"ping":"abc"}'
    key = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYzEy"
    expected = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    assert signing.metriport_signature(body=body, key=key) == expected
    assert signing.metriport_signature_verify(body=body, key=key, signature=expected)
    assert not signing.metriport_signature_verify(body=body + b" ", key=key, signature=expected)


def test_standard_webhooks_signature_signs_id_timestamp_and_body_with_the_decoded_secret():
    key = signing.webhook_key_generate()
    body = b'{"a":1}'
    headers = signing.signature_headers(body=body, key=key, message_id="msg-1", timestamp=1_700_000_000, standard=True)
    secret = base64.b64decode(key[len("whsec_") :])
    digest = hmac.new(secret, b"msg-1.1700000000." + body, hashlib.sha256).digest()
    assert headers["webhook-id"] == "msg-1"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()
    assert headers["x-metriport-signature"] == hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def test_standard_headers_can_be_turned_off():
    headers = signing.signature_headers(body=b"{}", key="k", message_id="m", timestamp=1, standard=False)
    assert set(headers) == {"x-metriport-signature"}
