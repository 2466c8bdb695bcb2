"""TOTP enrolment, confirmation, disabling, recovery codes — and the second-factor check at login.

Flow: `enrol` stores a fresh seed as *pending* (encrypted) and returns it with
an otpauth URI and a QR code; `confirm` with a code from the authenticator
makes it the user's seed, records the step (so that code cannot log in
again) and returns ten recovery codes, shown this once. `disable` needs a
current code and is refused while the tenant requires MFA for staff.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradeflow.identity import totp
from tradeflow.identity.errors import (
    InvalidMfaCode,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    MfaPolicyConflict,
)
from tradeflow.identity.models import Tenant, User
from tradeflow.identity.principal import Principal
from tradeflow.identity.repository import IdentityRepository
from tradeflow.identity.security_events import Kind, record
from tradeflow.identity.tokens import learn_key
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.time import utcnow

ISSUER = "Tradeflow"


def _aad(user: User) -> bytes:
    # Binding the ciphertext to its row stops a seed being copied onto another user.
    return b"users.totp_secret:" + user.id.bytes


def encrypt_seed(keyring: Keyring, user: User, secret: str) -> str:
    return keyring.encrypt_str(secret, aad=_aad(user))


def decrypt_seed(keyring: Keyring, user: User, token: str) -> str:
    learn_key(keyring, Keyring.key_id_of(token))
    return keyring.decrypt_str(token, aad=_aad(user))


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    otpauth_uri: str


def account_label(user: User, tenant: Tenant) -> str:
    return f"{user.email} ({tenant.slug})"


async def enrol(repo: IdentityRepository, keyring: Keyring, user: User) -> Enrolment:
    if user.totp_secret is not None:
        raise MfaAlreadyEnabled("MFA is already on; disable it first to enrol a new device.")
    tenant = await repo.tenant()
    secret = totp.new_secret()
    user.totp_pending_secret = encrypt_seed(keyring, user, secret)
    user.updated_at = utcnow()
    await repo.session.flush()
    return Enrolment(
        secret=secret,
        otpauth_uri=totp.provisioning_uri(
            secret, account=account_label(user, tenant), issuer=ISSUER
        ),
    )


async def pending_uri(repo: IdentityRepository, keyring: Keyring, user: User) -> str | None:
    if user.totp_pending_secret is None:
        return None
    tenant = await repo.tenant()
    secret = decrypt_seed(keyring, user, user.totp_pending_secret)
    return totp.provisioning_uri(secret, account=account_label(user, tenant), issuer=ISSUER)


async def confirm(
    repo: IdentityRepository,
    keyring: Keyring,
    user: User,
    code: str,
    *,
    actor: Principal | None,
    ip: str | None = None,
) -> list[str]:
    """Turn the pending seed on with a valid code; returns the recovery codes (shown once)."""
    if user.totp_secret is not None:
        raise MfaAlreadyEnabled("MFA is already on.")
    if user.totp_pending_secret is None:
        raise MfaNotEnabled("Start with POST /v1/me/mfa/enrol.")
    secret = decrypt_seed(keyring, user, user.totp_pending_secret)
    step = totp.verify(secret, code, last_step=user.totp_last_step)
    if step is None:
        raise InvalidMfaCode("The code does not match; check the device's clock and try again.")
    user.totp_secret = user.totp_pending_secret
    user.totp_pending_secret = None
    user.totp_last_step = step
    user.mfa_enabled_at = utcnow()
    user.updated_at = utcnow()
    codes = await _new_recovery_codes(repo, user)
    await record(repo, Kind.MFA_ENROLLED, user_id=user.id, actor=actor, ip=ip)
    return codes


async def _new_recovery_codes(repo: IdentityRepository, user: User) -> list[str]:
    codes = totp.new_recovery_codes()
    await repo.replace_recovery_codes(user.id, [totp.hash_recovery_code(c) for c in codes])
    return codes


async def check_code(repo: IdentityRepository, keyring: Keyring, user: User, code: str) -> None:
    """Accept a current TOTP code once (advancing the user's last step) or raise."""
    if user.totp_secret is None:
        raise MfaNotEnabled("MFA is not on for this account.")
    secret = decrypt_seed(keyring, user, user.totp_secret)
    step = totp.verify(secret, code, last_step=user.totp_last_step)
    if step is None:
        raise InvalidMfaCode("The code is wrong, expired or already used.")
    user.totp_last_step = step
    await repo.session.flush()


async def spend_recovery_code(
    repo: IdentityRepository, user: User, code: str, *, ip: str | None = None
) -> None:
    if not await repo.spend_recovery_code(user.id, totp.hash_recovery_code(code)):
        raise InvalidMfaCode("The recovery code is wrong or already used.")
    left = await repo.count_recovery_codes(user.id)
    await record(repo, Kind.RECOVERY_CODE_USED, user_id=user.id, ip=ip, remaining=left)


async def disable(
    repo: IdentityRepository,
    keyring: Keyring,
    user: User,
    code: str,
    *,
    actor: Principal | None,
    ip: str | None = None,
) -> None:
    tenant = await repo.tenant()
    if tenant.mfa_required_for_staff and user.kind == "staff":
        raise MfaPolicyConflict(
            "This tenant requires MFA for staff; an admin can reset it with "
            "`tradeflow users reset-mfa` if the device is lost."
        )
    await check_code(repo, keyring, user, code)
    user.totp_secret = None
    user.totp_pending_secret = None
    user.mfa_enabled_at = None
    user.updated_at = utcnow()
    await repo.delete_recovery_codes(user.id)
    await record(repo, Kind.MFA_DISABLED, user_id=user.id, actor=actor, ip=ip)


async def regenerate_recovery_codes(
    repo: IdentityRepository,
    keyring: Keyring,
    user: User,
    code: str,
    *,
    actor: Principal | None,
    ip: str | None = None,
) -> list[str]:
    await check_code(repo, keyring, user, code)
    codes = await _new_recovery_codes(repo, user)
    await record(repo, Kind.RECOVERY_CODES_REGENERATED, user_id=user.id, actor=actor, ip=ip)
    return codes
