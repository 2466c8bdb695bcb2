"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature
is base64 HMAC-SHA256 under the secret's bytes (the base64 part after
`whsec_`), sent as `v1,<signature>`. During a rotation's overlap window the
header carries one signature per secret, space-separated, so receivers that
still hold the old secret keep verifying.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec allows 24 to 64


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(raw)


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of `body` for message `msg_id` sent at `timestamp`.

    `secret` is the `whsec_…` string or its already decoded key bytes (`secret_bytes`),
    which a sender keeps so it does not decode the secret for every message."""
    key = secret if isinstance(secret, bytes) else secret_bytes(secret)
    to_sign = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    digest = hmac.digest(key, to_sign, hashlib.sha256)  # one-shot: no HMAC object per message
    return "v1," + base64.b64encode(digest).decode()


def signature_header(
    secrets_: Sequence[str | bytes], msg_id: str, timestamp: int, body: bytes
) -> str:
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets_)


def headers(
    secrets_: Sequence[str | bytes], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets_, msg_id, timestamp, body),
        "content-type": "application/json",
    }
