"""`tradeflow up --demo`: a demo seller with an owner (password + TOTP) and an all-scopes API key.

The credentials go to `$TRADEFLOW_HOME/demo-credentials.json` (mode 0600):
`tenant_id`, `email`, `password`, `totp_secret`, `api_key`, `base_url`.

Re-running is harmless: every credential in an existing file that still
works is kept, and only what is missing or no longer valid is made anew
(a password that no longer matches is reset, a revoked key replaced, …).

Other contexts add their demo data by shipping `tradeflow/<context>/demo.py`
with `async def seed(db, settings, keyring, creds) -> dict`; it runs after
the identity part, gets the credentials so far, and returns keys to add to
the file (e.g. `customer_id`). Keys it does not return are left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib
import json
import os
import pkgutil
import secrets
from pathlib import Path
from typing import Any

import structlog

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring

log = structlog.get_logger(__name__)

DEMO_SLUG = "demo"
DEMO_NAME = "Demo Seller"
DEMO_EMAIL = "owner@demo-seller.example.com"
CREDENTIALS_FILE = "demo-credentials.json"


def credentials_path(settings: Settings) -> Path:
    return settings.home.resolve() / CREDENTIALS_FILE


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def new_password() -> str:
    return "demo-" + secrets.token_urlsafe(15)


async def _seed_identity(db: Database, keyring: Keyring, old: dict[str, Any]) -> dict[str, Any]:
    from tradeflow.identity import mfa, passwords, service
    from tradeflow.identity.principal import ALL_SCOPES
    from tradeflow.identity.repository import CredentialRepository, IdentityRepository
    from tradeflow.identity.tokens import api_key_prefix, is_api_key, sha256

    creds: dict[str, Any] = {}
    async with db.system_session() as s:
        lookup = CredentialRepository(s)
        tenant = await lookup.tenant_by_ref(DEMO_SLUG)
        if tenant is None:
            tenant = await service.create_tenant(s, name=DEMO_NAME, slug=DEMO_SLUG)
        repo = IdentityRepository(s, tenant.id)
        creds["tenant_id"] = str(tenant.id)

        user = await repo.user_by_email(str(old.get("email") or DEMO_EMAIL))
        if user is None:
            user = await repo.user_by_email(DEMO_EMAIL)
        kept = old.get("password")
        password = kept if isinstance(kept, str) else new_password()
        if user is None:
            password = new_password()
            user = await service.create_user(
                s, tenant.id, email=DEMO_EMAIL, password=password, role="owner"
            )
        elif not passwords.verify_password(user.password_hash, password):
            password = new_password()
            user.password_hash = await passwords.hash_password_async(password)
        user.active, user.role, user.locked_until, user.failed_logins = True, "owner", None, 0
        creds["email"], creds["password"] = user.email, password

        secret = old.get("totp_secret")
        current = mfa.decrypt_seed(keyring, user, user.totp_secret) if user.totp_secret else None
        if (
            current is None
            or not isinstance(secret, str)
            or not hmac.compare_digest(current, secret)
        ):
            from tradeflow.identity import totp

            secret = totp.new_secret()
            user.totp_secret = mfa.encrypt_seed(keyring, user, secret)
            user.totp_pending_secret, user.totp_last_step = None, None
            from tradeflow.kit.time import utcnow

            user.mfa_enabled_at = utcnow()
        creds["totp_secret"] = secret

        api_key = old.get("api_key")
        usable = False
        if isinstance(api_key, str) and is_api_key(api_key):
            prefix = api_key_prefix(api_key)
            key = await lookup.api_key_by_prefix(prefix) if prefix else None
            usable = bool(
                key is not None
                and key.tenant_id == tenant.id
                and hmac.compare_digest(key.key_hash, sha256(api_key))
                and key.revoked_at is None
                and key.expires_at is None
                and set(key.scopes) >= ALL_SCOPES
            )
        if not usable:
            created = await service.create_api_key(
                repo, name="demo (all scopes)", scopes=ALL_SCOPES, actor=None, created_by=user.id
            )
            api_key = created.token
        creds["api_key"] = api_key
        await s.commit()
    return creds


def _context_seeders() -> list[Any]:
    import tradeflow

    seeders = []
    for mod in pkgutil.iter_modules(tradeflow.__path__):
        if not mod.ispkg:
            continue
        with contextlib.suppress(ModuleNotFoundError):
            module = importlib.import_module(f"tradeflow.{mod.name}.demo")
            if callable(getattr(module, "seed", None)):
                seeders.append(module.seed)
    return seeders


async def seed_demo_async(settings: Settings, url: str, keyring: Keyring) -> dict[str, Any]:
    path = credentials_path(settings)
    old = _read(path)
    db = Database.from_settings(settings, url)
    try:
        creds = {**old, **await _seed_identity(db, keyring, old)}
        creds["base_url"] = settings.base_url
        for seed in _context_seeders():
            creds.update(await seed(db, settings, keyring, dict(creds)) or {})
    finally:
        await db.dispose()
    _write(path, creds)
    log.info("demo_seeded", path=str(path), tenant_id=creds["tenant_id"])
    return creds


def seed_demo(settings: Settings, url: str, keyring: Keyring) -> dict[str, Any]:
    """Seed (or repair) the demo tenant and write its credentials; returns them."""
    return asyncio.run(seed_demo_async(settings, url, keyring))
