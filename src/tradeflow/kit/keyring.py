"""Envelope encryption for secrets kept in the database (AES-256-GCM).

Each secret gets its own random data key (DEK); the DEK is wrapped by a
master key from the key ring, and the token records the master key's id:

    tfe1.<kid>.<base64url(wrapped DEK)>.<base64url(nonce || ciphertext)>

Rotating the master key re-wraps DEKs only (`tradeflow keys rotate`); the
data ciphertext never changes. Master keys come from `TRADEFLOW_MASTER_KEY`
("kid:base64,kid:base64", first active), `TRADEFLOW_MASTER_KEY_FILE`, or —
for the embedded set-up only — a file generated under `$TRADEFLOW_HOME`.
Keys never live in the repository or the database.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tradeflow.config import ConfigError, Settings

TOKEN_PREFIX = "tfe1"
_DEK_AAD = b"tradeflow/dek"
KEY_FILE_NAME = "master-keys.json"


class DecryptionError(Exception):
    """A ciphertext could not be opened: wrong key, unknown key id, or tampering."""


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64d(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass
class Keyring:
    keys: dict[str, bytes]
    active: str
    source: Path | None = None
    _derived: dict[tuple[str, bytes], bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise ConfigError(f"master key ring: active key {self.active!r} is not in the ring")
        for kid, key in self.keys.items():
            if len(key) != 32:
                raise ConfigError(
                    f"master key {kid!r} must be 32 bytes (base64 of 32 random bytes)"
                )
            if not kid.isalnum():
                raise ConfigError(f"master key id {kid!r} must be alphanumeric")

    # -- encryption -------------------------------------------------------------------------
    def encrypt(self, plaintext: bytes, *, aad: bytes = b"") -> str:
        dek = AESGCM.generate_key(bit_length=256)
        data_nonce = os.urandom(12)
        ciphertext = AESGCM(dek).encrypt(data_nonce, plaintext, aad)
        return ".".join(
            [
                TOKEN_PREFIX,
                self.active,
                _b64e(self._wrap(self.active, dek)),
                _b64e(data_nonce + ciphertext),
            ]
        )

    def decrypt(self, token: str, *, aad: bytes = b"") -> bytes:
        kid, wrapped, payload = self._split(token)
        dek = self._unwrap(kid, wrapped)
        try:
            return AESGCM(dek).decrypt(payload[:12], payload[12:], aad)
        except InvalidTag as exc:
            raise DecryptionError("ciphertext failed authentication") from exc

    def encrypt_str(self, plaintext: str, *, aad: bytes = b"") -> str:
        return self.encrypt(plaintext.encode(), aad=aad)

    def decrypt_str(self, token: str, *, aad: bytes = b"") -> str:
        return self.decrypt(token, aad=aad).decode()

    def rewrap(self, token: str) -> str:
        """The same secret with its DEK wrapped by the active key (data ciphertext unchanged)."""
        kid, wrapped, payload = self._split(token)
        if kid == self.active:
            return token
        dek = self._unwrap(kid, wrapped)
        return ".".join(
            [TOKEN_PREFIX, self.active, _b64e(self._wrap(self.active, dek)), _b64e(payload)]
        )

    @staticmethod
    def key_id_of(token: str) -> str:
        return token.split(".", 2)[1]

    # -- derived keys (e.g. JWT signing, one per master key so `kid` rotates with the ring) --
    def derive(self, kid: str, purpose: bytes) -> bytes:
        cached = self._derived.get((kid, purpose))
        if cached is None:
            cached = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
                self.keys[kid]
            )
            self._derived[(kid, purpose)] = cached
        return cached

    # -- internals --------------------------------------------------------------------------
    def _wrap(self, kid: str, dek: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.keys[kid]).encrypt(nonce, dek, _DEK_AAD + kid.encode())

    def _unwrap(self, kid: str, wrapped: bytes) -> bytes:
        key = self.keys.get(kid)
        if key is None:
            raise DecryptionError(f"master key {kid!r} is not in the key ring")
        try:
            return AESGCM(key).decrypt(wrapped[:12], wrapped[12:], _DEK_AAD + kid.encode())
        except InvalidTag as exc:
            raise DecryptionError(f"data key does not open under master key {kid!r}") from exc

    @staticmethod
    def _split(token: str) -> tuple[str, bytes, bytes]:
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != TOKEN_PREFIX:
            raise DecryptionError("not a Tradeflow ciphertext")
        try:
            return parts[1], _b64d(parts[2]), _b64d(parts[3])
        except ValueError as exc:
            raise DecryptionError("ciphertext is not valid base64") from exc

    # -- persistence (file-based rings only) -------------------------------------------------
    def add_key(self) -> str:
        """Generate a new master key, make it active, and save the ring if it came from a file."""
        kid = f"k{len(self.keys) + 1}"
        while kid in self.keys:
            kid = f"k{secrets.randbelow(10**6)}"
        self.keys[kid] = secrets.token_bytes(32)
        self.active = kid
        if self.source is not None:
            save_key_file(self.source, self)
        return kid


def _parse_env(value: str) -> tuple[dict[str, bytes], str]:
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for i, item in enumerate(v.strip() for v in value.split(",") if v.strip()):
        kid, _, b64 = item.rpartition(":") if ":" in item else ("", "", item)
        kid = kid or f"k{i + 1}"
        try:
            keys[kid] = base64.b64decode(b64, validate=True)
        except ValueError as exc:
            raise ConfigError(f"TRADEFLOW_MASTER_KEY: key {kid!r} is not valid base64") from exc
        order.append(kid)
    if not order:
        raise ConfigError("TRADEFLOW_MASTER_KEY is empty")
    return keys, order[0]


def read_key_file(path: Path) -> Keyring:
    try:
        raw = json.loads(path.read_text())
        keys = {kid: base64.b64decode(b64, validate=True) for kid, b64 in raw["keys"].items()}
        return Keyring(keys=keys, active=str(raw["active"]), source=path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"master key file {path} is unreadable or malformed: {exc}") from exc


def _write_temp(path: Path, ring: Keyring) -> Path:
    data = {
        "active": ring.active,
        "keys": {kid: base64.b64encode(k).decode() for kid, k in ring.keys.items()},
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def save_key_file(path: Path, ring: Keyring) -> None:
    os.replace(_write_temp(path, ring), path)


def _create_key_file(path: Path) -> Keyring:
    """Create the ring file unless another process just did; either way, return what is on disk.

    The complete file is linked into place (`link` fails if the name exists), so
    concurrent first starts agree on one key and nobody reads a half-written file.
    """
    ring = Keyring(keys={"k1": secrets.token_bytes(32)}, active="k1", source=path)
    tmp = _write_temp(path, ring)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return read_key_file(path)
    finally:
        tmp.unlink()
    return ring


def load_keyring(settings: Settings, *, create: bool = True) -> Keyring:
    """The configured ring; for the embedded set-up, generate one under `$TRADEFLOW_HOME`."""
    if settings.master_key:
        keys, active = _parse_env(settings.master_key)
        return Keyring(keys=keys, active=active)
    path = settings.master_key_file or (settings.home / KEY_FILE_NAME)
    if path.exists():
        return read_key_file(path)
    if settings.master_key_file is not None:
        raise ConfigError(f"TRADEFLOW_MASTER_KEY_FILE: {path} does not exist")
    if not create:
        raise ConfigError("no master key: set TRADEFLOW_MASTER_KEY or TRADEFLOW_MASTER_KEY_FILE")
    path.parent.mkdir(parents=True, exist_ok=True)
    return _create_key_file(path)


# Columns holding keyring ciphertexts; `tradeflow keys rotate` re-wraps each of them.
ENCRYPTED_COLUMNS: list[tuple[str, str]] = []


def register_encrypted_column(table: str, column: str) -> None:
    if (table, column) not in ENCRYPTED_COLUMNS:
        ENCRYPTED_COLUMNS.append((table, column))
