"""Webhook secrets and signatures, as the Standard Webhooks specification says: a secret
is ``whsec_`` then base64 of 24 to 64 random bytes; ``webhook-signature`` is ``v1,<base64
HMAC-SHA256 of id.timestamp.body>`` keyed with the secret's bytes."""

import base64
import binascii
import hashlib
import hmac
import time


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ``ValueError`` if it is not one."""
    if not secret.startswith("whsec_"):
        raise ValueError("the secret must start with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("the secret after whsec_ must be base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("the secret must hold 24 to 64 bytes")
    return key


def signature(*, secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(*, secret: str, message_id: str, body: bytes) -> dict[str, str]:
    """The headers of one signed POST of ``body`` (Standard Webhooks), timestamped now."""
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": "tenant-jobs-webhooks",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(
            secret=secret, message_id=message_id, timestamp=timestamp, body=body
        ),
    }
