"""A connector's configuration at rest: plain settings in `config`, secrets sealed by the key ring.

The secret fields (`SecretStr` in the plugin's config model) are removed from
the stored JSON and kept as one AES-GCM envelope (`secrets_ciphertext`), bound
to the instance id as associated data so a ciphertext cannot be moved to
another instance. They are never returned by the API (masked as `"********"`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import SecretStr

from tradeflow.integrations.plugins import ConnectorConfig
from tradeflow.kit.keyring import Keyring

MASK = "********"


def _aad(instance_id: uuid.UUID) -> bytes:
    return f"connector:{instance_id}".encode()


def split(config: ConnectorConfig) -> tuple[dict[str, Any], dict[str, str]]:
    """(plain settings as JSON, secrets as plain strings) of a validated config."""
    secret_names = set(config.secret_fields())
    plain = config.model_dump(mode="json", exclude=secret_names, exclude_none=True)
    secrets: dict[str, str] = {}
    for name in secret_names:
        value = getattr(config, name)
        if isinstance(value, SecretStr):
            secrets[name] = value.get_secret_value()
    return plain, secrets


def seal(keyring: Keyring, instance_id: uuid.UUID, secrets: dict[str, str]) -> str | None:
    if not secrets:
        return None
    return keyring.encrypt_str(json.dumps(secrets, sort_keys=True), aad=_aad(instance_id))


def unseal(keyring: Keyring, instance_id: uuid.UUID, ciphertext: str | None) -> dict[str, str]:
    if not ciphertext:
        return {}
    data: dict[str, str] = json.loads(keyring.decrypt_str(ciphertext, aad=_aad(instance_id)))
    return data


def load(
    model: type[ConnectorConfig],
    keyring: Keyring,
    instance_id: uuid.UUID,
    plain: dict[str, Any],
    ciphertext: str | None,
) -> ConnectorConfig:
    """The plugin's config object, secrets included (for the worker only)."""
    return model.model_validate({**plain, **unseal(keyring, instance_id, ciphertext)})


def masked(
    model: type[ConnectorConfig],
    plain: dict[str, Any],
    ciphertext: str | None,
    keyring: Keyring,
    instance_id: uuid.UUID,
) -> dict[str, Any]:
    """The config as the API shows it: every secret that is set appears as `MASK`."""
    present = unseal(keyring, instance_id, ciphertext).keys()
    return {**plain, **{name: MASK for name in present}}
