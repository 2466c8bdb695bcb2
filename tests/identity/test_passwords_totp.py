"""Password policy and hashing; TOTP against RFC 6238 Appendix B; recovery codes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from tradeflow.identity import passwords, totp
from tradeflow.identity.errors import WeakPassword


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short pw 11", "too-short"),
        ("x" * 129, "too-long"),
        ("PASSWORD1234", "common"),  # on the list, in another case
        ("1QAZ2wsx3edc", "common"),
    ],
)
def test_policy_rejects(password: str, reason: str) -> None:
    with pytest.raises(WeakPassword) as exc:
        passwords.check_policy(password)
    assert exc.value.extra["reason"] == reason


@pytest.mark.parametrize(
    "password", ["a" * 12, "correct horse battery staple", "ü" * 64, "x" * 128]
)
def test_policy_accepts(password: str) -> None:
    passwords.check_policy(password)


def test_shipped_list_is_loaded() -> None:
    common = passwords.common_passwords()
    assert len(common) > 10_000
    assert "password" in common
    assert not any(p.startswith("# ") for p in common)


def test_hash_is_argon2id_and_verifies() -> None:
    h = passwords.hash_password("correct horse battery staple")
    assert h.startswith("$argon2id$")
    assert passwords.verify_password(h, "correct horse battery staple")
    assert not passwords.verify_password(h, "correct horse battery stapler")
    assert not passwords.verify_password("not a hash", "x")


def test_unicode_is_normalised_before_hashing() -> None:
    composed, decomposed = "caf\u00e9 au lait latte", "cafe\u0301 au lait latte"
    assert passwords.verify_password(passwords.hash_password(composed), decomposed)


def test_default_parameters_are_rfc9106_second_choice() -> None:
    from argon2 import PasswordHasher

    ph = PasswordHasher()
    assert (ph.time_cost, ph.memory_cost, ph.parallelism) == (3, 65536, 4)


# RFC 6238 Appendix B: the seed is the ASCII string repeated to the digest's length.
SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("t", "sha1", "sha256", "sha512"), VECTORS)
def test_rfc6238_appendix_b(t: int, sha1: str, sha256: str, sha512: str) -> None:
    import base64

    for algo, expected in (("sha1", sha1), ("sha256", sha256), ("sha512", sha512)):
        seed = SEEDS[algo]
        assert len(seed) == {"sha1": 20, "sha256": 32, "sha512": 64}[algo]
        secret = base64.b32encode(seed).decode()
        code = totp.code_at(secret, t // totp.INTERVAL, digits=8, digest=getattr(hashlib, algo))
        assert code == expected, (algo, t)


def test_verify_window_and_replay() -> None:
    secret = totp.new_secret()
    at = datetime(2030, 1, 1, 12, 0, 10, tzinfo=UTC)
    step = totp.step_of(at)
    for offset in (-1, 0, 1):
        assert (
            totp.verify(secret, totp.code_at(secret, step + offset), last_step=None, at=at)
            == step + offset
        )
    assert totp.verify(secret, totp.code_at(secret, step + 2), last_step=None, at=at) is None
    assert totp.verify(secret, totp.code_at(secret, step - 2), last_step=None, at=at) is None
    # Once step N was accepted, N and earlier never are again.
    assert totp.verify(secret, totp.code_at(secret, step), last_step=step, at=at) is None
    assert totp.verify(secret, totp.code_at(secret, step - 1), last_step=step, at=at) is None
    assert totp.verify(secret, totp.code_at(secret, step + 1), last_step=step, at=at) == step + 1
    assert totp.verify(secret, "12345", last_step=None, at=at) is None
    assert totp.verify(secret, "abcdef", last_step=None, at=at) is None


def test_recovery_codes_are_distinct_and_hash_ignoring_format() -> None:
    codes = totp.new_recovery_codes()
    assert len(codes) == len(set(codes)) == 10
    code = codes[0]
    assert len(code) == 19
    assert code.count("-") == 3
    assert totp.hash_recovery_code(code) == totp.hash_recovery_code(code.upper().replace("-", " "))
    assert totp.hash_recovery_code(code) != totp.hash_recovery_code(codes[1])


def test_qr_png_is_a_png() -> None:
    uri = totp.provisioning_uri(
        totp.new_secret(), account="a@example.com (demo)", issuer="Tradeflow"
    )
    assert uri.startswith("otpauth://totp/Tradeflow:")
    assert totp.qr_png(uri).startswith(b"\x89PNG\r\n\x1a\n")
