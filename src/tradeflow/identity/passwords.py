"""Password hashing (argon2id) and the acceptance policy.

Policy (NIST SP 800-63B): 12 to 128 characters, any characters, no
composition rules, and not one of the shipped common passwords
(case-insensitive). Hashes carry their parameters, so raising them later
re-hashes each password at its owner's next successful login.
"""

from __future__ import annotations

import asyncio
import unicodedata
from functools import lru_cache
from importlib.resources import files

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tradeflow.identity.errors import WeakPassword

MIN_LENGTH = 12
MAX_LENGTH = 128

# RFC 9106's second recommended profile (argon2id, t=3, m=64 MiB, p=4): argon2-cffi's default.
_hasher = PasswordHasher(type=Type.ID)


def configure_hasher(*, time_cost: int, memory_cost: int, parallelism: int) -> None:
    """Change the argon2id parameters for new hashes (existing ones re-hash at next login)."""
    global _hasher, _dummy_hash
    _hasher = PasswordHasher(
        time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism, type=Type.ID
    )
    _dummy_hash = None


def hasher() -> PasswordHasher:
    return _hasher


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = files("tradeflow.identity").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().casefold() for line in text.splitlines() if line and not line.startswith("# ")
    )


def normalise(password: str) -> str:
    # NFKC so that the same password typed on different keyboards hashes the same.
    return unicodedata.normalize("NFKC", password)


def check_policy(password: str) -> None:
    """Raise `WeakPassword` naming the rule a new password breaks."""
    pw = normalise(password)
    if len(pw) < MIN_LENGTH:
        raise WeakPassword(f"Use at least {MIN_LENGTH} characters.", reason="too-short")
    if len(pw) > MAX_LENGTH:
        raise WeakPassword(f"Use at most {MAX_LENGTH} characters.", reason="too-long")
    if pw.casefold() in common_passwords() or pw.strip().casefold() in common_passwords():
        raise WeakPassword(
            "This password is on the list of commonly used passwords; choose another.",
            reason="common",
        )


def hash_password(password: str) -> str:
    return _hasher.hash(normalise(password))


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, normalise(password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


_dummy_hash: str | None = None


def burn_verify(password: str) -> None:
    """Spend the time a real verification would, for an e-mail that has no account."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("tradeflow-no-such-account")
    verify_password(_dummy_hash, password)


# argon2 is CPU-bound for ~0.1 s; run it off the event loop so other requests proceed.
async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_password_async(stored: str | None, password: str) -> bool:
    if stored is None:
        await asyncio.to_thread(burn_verify, password)
        return False
    return await asyncio.to_thread(verify_password, stored, password)
