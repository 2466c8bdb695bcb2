"""Access tokens (JWT), refresh tokens and API keys: minting, parsing, hashing.

* **Access tokens** are HS256 JWTs signed with a key derived from the master
  key ring (`keyring.derive(kid, b"tradeflow/jwt")`); the `kid` header names
  the master key, so after `tradeflow keys rotate` tokens signed under the old
  key stay valid until they expire while new ones use the new key.
* **Refresh tokens** and **API keys** are opaque random strings, stored as
  SHA-256 hashes: with 256 bits of randomness there is nothing to guess, so a
  slow password hash would only cost latency (see docs/adr/0005).
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import jwt

from tradeflow.config import ConfigError
from tradeflow.kit.keyring import Keyring, read_key_file
from tradeflow.kit.time import utcnow

JWT_PURPOSE = b"tradeflow/jwt"
JWT_ALGORITHM = "HS256"
ENROL_TOKEN_TTL = timedelta(minutes=10)

API_KEY_PREFIX = "tf_live_"
API_KEY_ID_LENGTH = 8
REFRESH_PREFIX = "tfr_"
_ID_ALPHABET = string.ascii_letters + string.digits

TokenType = Literal["access", "mfa_enrol"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    session_id: uuid.UUID | None
    token_type: TokenType
    expires_at: datetime
    kid: str


class TokenError(Exception):
    """The token is malformed, forged, expired or from another issuer."""


def mint_access_token(
    keyring: Keyring,
    *,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID | None,
    ttl: timedelta,
    issuer: str,
    token_type: TokenType = "access",  # noqa: S107 — a claim value, not a secret
    now: datetime | None = None,
) -> str:
    issued = now or utcnow()
    kid = keyring.active
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(user_id),
        "tid": str(tenant_id),
        "typ": token_type,
        "iat": int(issued.timestamp()),
        "nbf": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
        "jti": secrets.token_hex(8),
    }
    if session_id is not None:
        claims["sid"] = str(session_id)
    key = keyring.derive(kid, JWT_PURPOSE)
    return jwt.encode(claims, key, algorithm=JWT_ALGORITHM, headers={"kid": kid})


_RELOAD_INTERVAL = 10.0
_last_reload = 0.0


def learn_key(keyring: Keyring, kid: str) -> bool:
    """Whether `kid` is (now) in the ring, re-reading a file-based ring at most every 10 s.

    A process started before `tradeflow keys rotate` does not know the new key;
    this lets it read secrets re-wrapped under it without a restart.
    """
    global _last_reload
    if kid in keyring.keys:
        return True
    now = time.monotonic()
    if keyring.source is None or not kid.isalnum() or now - _last_reload < _RELOAD_INTERVAL:
        return False
    _last_reload = now
    try:
        fresh = read_key_file(keyring.source)
    except ConfigError:
        return False
    keyring.keys.update(fresh.keys)
    keyring.active = fresh.active
    return kid in keyring.keys


def decode_access_token(keyring: Keyring, token: str, *, issuer: str) -> AccessClaims:
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or not learn_key(keyring, kid):
            raise TokenError("unknown signing key")
        if header.get("alg") != JWT_ALGORITHM:
            raise TokenError("unexpected algorithm")
        claims = jwt.decode(
            token,
            keyring.derive(kid, JWT_PURPOSE),
            algorithms=[JWT_ALGORITHM],
            issuer=issuer,
            options={"require": ["exp", "iss", "sub", "tid", "typ"]},
            leeway=5,
        )
        token_type = claims["typ"]
        if token_type not in ("access", "mfa_enrol"):
            raise TokenError("unexpected token type")
        sid = claims.get("sid")
        return AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            tenant_id=uuid.UUID(claims["tid"]),
            session_id=uuid.UUID(sid) if sid else None,
            token_type=token_type,
            expires_at=datetime.fromtimestamp(claims["exp"], tz=utcnow().tzinfo),
            kid=kid,
        )
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise TokenError(str(exc)) from exc


def sha256(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def new_refresh_token() -> tuple[str, bytes]:
    token = REFRESH_PREFIX + secrets.token_urlsafe(32)
    return token, sha256(token)


@dataclass(frozen=True, slots=True)
class NewApiKey:
    token: str  # shown once
    prefix: str  # the non-secret id part, stored and shown in lists
    key_hash: bytes


def new_api_key() -> NewApiKey:
    """`tf_live_<8 alphanumerics>_<43 url-safe chars>`: 256 bits of secret after the id."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(API_KEY_ID_LENGTH))
    token = f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewApiKey(token=token, prefix=key_id, key_hash=sha256(token))


def is_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


def api_key_prefix(token: str) -> str | None:
    """The id part of an API key, or None when the token cannot be one of ours."""
    body = token[len(API_KEY_PREFIX) :]
    key_id, sep, secret = (
        body[:API_KEY_ID_LENGTH],
        body[API_KEY_ID_LENGTH : API_KEY_ID_LENGTH + 1],
        body[API_KEY_ID_LENGTH + 1 :],
    )
    if sep != "_" or len(key_id) != API_KEY_ID_LENGTH or not key_id.isalnum() or len(secret) < 22:
        return None
    return key_id
