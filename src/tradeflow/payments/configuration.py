"""Per-tenant processor configuration: validated by the plugin's model, secrets encrypted at rest.

Non-secret settings are stored as JSON; the plugin's `SecretStr` fields are
stored together as one key-ring ciphertext bound (AAD) to the tenant and the
processor, so a ciphertext copied to another row does not open. Secrets are
write-only: they are never returned, and a PUT that leaves one out keeps it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.kit.keyring import Keyring
from tradeflow.payments.errors import (
    InvalidProcessorConfig,
    ProcessorAccountInUse,
    ProcessorNotConfigured,
)
from tradeflow.payments.models import ProcessorConfigRow
from tradeflow.payments.processors.base import Processor, ProcessorConfig
from tradeflow.payments.processors.registry import available, processor_class
from tradeflow.payments.repository import PaymentsRepository
from tradeflow.payments.schemas import ProcessorConfigIn, ProcessorOut


def secrets_aad(tenant_id: uuid.UUID, processor: str) -> bytes:
    return f"processor_configs:{tenant_id}:{processor}".encode()


@dataclass(frozen=True)
class LoadedConfig:
    tenant_id: uuid.UUID
    processor: str
    enabled: bool
    config: ProcessorConfig

    def build(self) -> Processor:
        return processor_class(self.processor)(self.config)


def _secrets(keyring: Keyring, row: ProcessorConfigRow) -> dict[str, str]:
    if not row.secrets:
        return {}
    value: dict[str, str] = json.loads(
        keyring.decrypt_str(row.secrets, aad=secrets_aad(row.tenant_id, row.processor))
    )
    return value


def load(keyring: Keyring, row: ProcessorConfigRow) -> LoadedConfig:
    cls = processor_class(row.processor)
    config = cls.config_model.model_validate({**row.settings, **_secrets(keyring, row)})
    return LoadedConfig(row.tenant_id, row.processor, row.enabled, config)


async def configure(
    session: AsyncSession,
    keyring: Keyring,
    *,
    tenant_id: uuid.UUID,
    name: str,
    body: ProcessorConfigIn,
    allow_private: bool = False,
) -> ProcessorConfigRow:
    """Create or replace the tenant's configuration of processor `name`.

    Addresses the plugin will call (`Processor.target_urls`) follow the webhooks' SSRF
    rule: no private, loopback or link-local targets unless `allow_private` (the
    operator's `TRADEFLOW_WEBHOOKS_ALLOW_PRIVATE`).
    """
    cls = processor_class(name)
    repo = PaymentsRepository(session, tenant_id)
    row = await repo.config(name)
    secret_names = cls.config_model.secret_fields()
    kept = {
        k: v for k, v in (_secrets(keyring, row) if row else {}).items() if k not in body.config
    }
    try:
        config = cls.config_model.model_validate({**body.config, **kept})
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(["config", *(str(p) for p in err["loc"])]),
                "message": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors()
        ]
        raise InvalidProcessorConfig(
            f"The {name} configuration is invalid: "
            + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            errors=errors,
        ) from exc
    check_targets(cls, config, allow_private=allow_private)
    settings = config.model_dump(mode="json", exclude=set(secret_names))
    secrets: dict[str, str] = {}
    for field_name in secret_names:
        value = getattr(config, field_name)
        if isinstance(value, SecretStr):
            secrets[field_name] = value.get_secret_value()
    aad = secrets_aad(tenant_id, name)
    ciphertext = keyring.encrypt_str(json.dumps(secrets), aad=aad) if secrets else None
    try:
        async with session.begin_nested():
            if row is None:
                row = ProcessorConfigRow(tenant_id=tenant_id, processor=name)
                session.add(row)
            row.enabled = body.enabled
            row.settings = settings
            row.secrets = ciphertext
            row.account_ref = cls.account_ref(config)
            await session.flush()
    except IntegrityError as exc:
        raise ProcessorAccountInUse(
            f"This {name} account is already connected to another Tradeflow tenant; "
            "each account's webhooks must lead to exactly one tenant."
        ) from exc
    await session.refresh(row)
    return row


def check_targets(cls: type[Processor], config: ProcessorConfig, *, allow_private: bool) -> None:
    """Refuse a config that points Tradeflow at an address it must not call (→ 422)."""
    from tradeflow.webhooks.ssrf import InvalidWebhookUrl, validate_url

    errors = []
    for field_name, url in cls.target_urls(config).items():
        try:
            validate_url(url, allow_private=allow_private)
        except InvalidWebhookUrl as exc:
            errors.append({"field": f"config.{field_name}", "message": exc.detail, "type": "ssrf"})
    if errors:
        raise InvalidProcessorConfig(
            "; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors
        )


async def usable(
    session: AsyncSession, keyring: Keyring, *, tenant_id: uuid.UUID, name: str | None
) -> LoadedConfig:
    """The enabled processor a new payment should use (named, or the only enabled one)."""
    repo = PaymentsRepository(session, tenant_id)
    rows = [r for r in await repo.configs() if r.enabled and r.processor in available()]
    if name is not None:
        rows = [r for r in rows if r.processor == name]
        if not rows:
            raise ProcessorNotConfigured(
                f"Processor {name!r} is not enabled for this tenant (PUT /v1/processors/{name}).",
                field="processor",
            )
    if not rows:
        raise ProcessorNotConfigured(
            "No payment processor is enabled for this tenant; configure one with "
            "PUT /v1/processors/{name}.",
            field="processor",
        )
    if len(rows) > 1:
        raise ProcessorNotConfigured(
            "Several processors are enabled; name one in `processor`.", field="processor"
        )
    return load(keyring, rows[0])


async def for_payment(
    session: AsyncSession, keyring: Keyring, *, tenant_id: uuid.UUID, name: str
) -> LoadedConfig:
    """The config a payment was made with (enabled or not: captures and refunds go on)."""
    row = await PaymentsRepository(session, tenant_id).config(name)
    if row is None:
        raise ProcessorNotConfigured(
            f"Processor {name!r} is no longer configured for this tenant.", field="processor"
        )
    return load(keyring, row)


def view(name: str, row: ProcessorConfigRow | None, *, base_url: str) -> ProcessorOut:
    cls = processor_class(name)
    secret_names = cls.config_model.secret_fields()
    config: dict[str, Any] = dict(row.settings) if row else {}
    secrets_set: list[str] = []
    if row is not None and row.secrets:
        # Which secrets are set is not itself secret; their values never leave the database.
        secrets_set = sorted(secret_names)
    return ProcessorOut(
        name=name,
        title=cls.title,
        configured=row is not None,
        enabled=bool(row and row.enabled),
        config=config,
        secrets_set=secrets_set,
        config_schema=cls.config_model.model_json_schema(),
        webhook_url=f"{base_url.rstrip('/')}/v1/processor-webhooks/{name}",
        updated_at=row.updated_at if row else None,
    )
