"""TOTP (RFC 6238) on pyotp, with replay protection and recovery codes.

A code is accepted for the current 30-second step or one step either side
(clock skew), and only for a step later than the last one accepted for that
user — so a code, once used, is never accepted again, even within its window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pyotp

from tradeflow.kit.time import utcnow

INTERVAL = 30
DIGITS = 6
SKEW_STEPS = 1
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i look-alikes


def new_secret() -> str:
    """A 160-bit base32 seed (RFC 4226's recommended length for HMAC-SHA1)."""
    return pyotp.random_base32(length=32)


def totp(
    secret: str, *, digits: int = DIGITS, digest: Callable[..., Any] = hashlib.sha1
) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=digits, digest=digest, interval=INTERVAL)


def step_of(at: datetime) -> int:
    return int(at.timestamp()) // INTERVAL


def code_at(secret: str, step: int, **kw: Any) -> str:
    return totp(secret, **kw).at(step * INTERVAL)


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return totp(secret).provisioning_uri(name=account, issuer_name=issuer)


def qr_png(uri: str) -> bytes:
    import segno

    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="png", scale=6, border=2)
    return out.getvalue()


def qr_png_base64(uri: str) -> str:
    return base64.b64encode(qr_png(uri)).decode()


def verify(
    secret: str, code: str, *, last_step: int | None, at: datetime | None = None
) -> int | None:
    """The time-step `code` matches (±1 step), or None; steps ≤ `last_step` never match."""
    code = "".join(code.split())
    if not code.isdigit() or len(code) != DIGITS:
        return None
    now = step_of(at or utcnow())
    accepted = None
    # Check every candidate step so timing does not reveal which one matched.
    for step in range(now - SKEW_STEPS, now + SKEW_STEPS + 1):
        if hmac.compare_digest(code_at(secret, step), code) and (
            last_step is None or step > last_step
        ):
            accepted = step
    return accepted


def new_recovery_codes() -> list[str]:
    """Ten codes of 16 characters (~78 bits each), shown once as `xxxx-xxxx-xxxx-xxxx`."""
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(16))
        codes.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return codes


def normalise_recovery_code(code: str) -> str:
    return "".join(ch for ch in code.casefold() if ch.isalnum())


def hash_recovery_code(code: str) -> bytes:
    # High-entropy random codes: a fast hash is enough (no dictionary to try).
    return hashlib.sha256(normalise_recovery_code(code).encode()).digest()
