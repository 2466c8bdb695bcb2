from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from tradeflow.config import ConfigError, load_settings
from tradeflow.kit.keyring import DecryptionError, Keyring, load_keyring


def ring(*kids: str) -> Keyring:
    return Keyring(keys={k: os.urandom(32) for k in kids}, active=kids[0])


def test_round_trip_and_aad() -> None:
    r = ring("k1")
    token = r.encrypt_str("JBSWY3DPEHPK3PXP", aad=b"user:1")
    assert token.startswith("tfe1.k1.")
    assert "JBSWY3DPEHPK3PXP" not in token
    assert r.decrypt_str(token, aad=b"user:1") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(DecryptionError):
        r.decrypt_str(token, aad=b"user:2")


def test_tampering_detected() -> None:
    r = ring("k1")
    token = r.encrypt(b"secret")
    head, payload = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[-1] ^= 1
    forged = head + "." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(DecryptionError):
        r.decrypt(forged)


def test_rewrap_moves_to_active_key_and_keeps_plaintext() -> None:
    r = ring("k1")
    old = r.encrypt(b"payload")
    r.keys["k2"] = os.urandom(32)
    r.active = "k2"
    new = r.rewrap(old)
    assert Keyring.key_id_of(new) == "k2"
    assert old.rsplit(".", 1)[1] == new.rsplit(".", 1)[1]  # data ciphertext untouched
    del r.keys["k1"]
    assert r.decrypt(new) == b"payload"
    with pytest.raises(DecryptionError, match="not in the key ring"):
        r.decrypt(old)


def test_env_key_ring_first_is_active() -> None:
    a, b = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()
    r = load_keyring(load_settings(master_key=f"new:{a},old:{b}"))
    assert r.active == "new"
    assert set(r.keys) == {"new", "old"}


def test_bad_env_key_is_named() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        load_keyring(load_settings(master_key=base64.b64encode(b"short").decode()))


def test_embedded_key_file_generated_private_and_stable(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    first = load_keyring(settings)
    path = tmp_path / "master-keys.json"
    assert path.stat().st_mode & 0o777 == 0o600
    second = load_keyring(settings)
    assert first.keys == second.keys
    kid = second.add_key()
    assert json.loads(path.read_text())["active"] == kid
    assert load_keyring(settings).active == kid


def test_derived_keys_differ_per_kid_and_purpose() -> None:
    r = ring("k1", "k2")
    assert r.derive("k1", b"jwt") != r.derive("k2", b"jwt")
    assert r.derive("k1", b"jwt") != r.derive("k1", b"other")
    assert r.derive("k1", b"jwt") == r.derive("k1", b"jwt")


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    settings = load_settings(home=tmp_path)
    with ThreadPoolExecutor(8) as pool:
        rings = list(pool.map(lambda _: load_keyring(settings), range(16)))
    assert len({r.keys["k1"] for r in rings}) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["master-keys.json"]
