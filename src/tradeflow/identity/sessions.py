"""Signing in and out: login (password, then TOTP or a recovery code), refresh, logout.

Brute-force defence, in three layers:

1. the `auth` rate limit per client IP and per e-mail (endpoints);
2. a **progressive delay** before answering a failed attempt, growing with the
   e-mail's recent failures (counted in the rate limiter's storage, so it is
   shared through Redis and applies equally to e-mails that have no account);
3. a **temporary lockout**: per account after `login_max_failures`
   consecutive failures (columns on `users`), per IP after
   `login_ip_max_failures` failures in the lockout window (limiter storage).

An unknown e-mail, a wrong password and a locked account all get the same 401
after the same argon2 work, so a caller cannot learn which e-mails exist.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.errors import ProblemError, TooManyRequests
from tradeflow.identity import mfa, passwords
from tradeflow.identity.errors import (
    AccountDisabled,
    InvalidCredentials,
    InvalidMfaCode,
    InvalidToken,
    MfaEnrolmentRequired,
    MfaRequired,
    TenantRequired,
)
from tradeflow.identity.models import AuthSession, RefreshToken, Tenant, User
from tradeflow.identity.principal import Principal
from tradeflow.identity.repository import CredentialRepository, IdentityRepository
from tradeflow.identity.security_events import Kind, log_only, record
from tradeflow.identity.tokens import (
    ENROL_TOKEN_TTL,
    mint_access_token,
    new_refresh_token,
    sha256,
)
from tradeflow.kit.keyring import Keyring
from tradeflow.kit.ratelimit import RateLimiter
from tradeflow.kit.time import utcnow

log = structlog.get_logger(__name__)

INVALID_CREDENTIALS = (
    "E-mail or password is wrong, or signing in is blocked for a while after repeated failures."
)


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    max_failures: int = 5
    lockout_seconds: int = 900
    ip_max_failures: int = 50
    # No delay for the first `delay_after` failures (typos), then base·2^n up to the cap.
    delay_after: int = 2
    delay_base_seconds: float = 0.25
    delay_max_seconds: float = 4.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginPolicy:
        return cls(
            max_failures=settings.login_max_failures,
            lockout_seconds=settings.login_lockout_seconds,
            ip_max_failures=settings.login_ip_max_failures,
        )

    @property
    def ip_limit(self) -> str:
        return f"{self.ip_max_failures}/{self.lockout_seconds} seconds"

    @property
    def email_limit(self) -> str:
        # Only counts failures for the delay; the lockout itself is per account.
        return f"1000/{self.lockout_seconds} seconds"

    def delay_for(self, failures: int) -> float:
        if failures <= self.delay_after:
            return 0.0
        return min(
            self.delay_max_seconds,
            self.delay_base_seconds * 2.0 ** (failures - self.delay_after - 1),
        )


@dataclass(frozen=True, slots=True)
class Client:
    """Who is knocking: the peer address and user agent, for events and IP limits."""

    ip: str
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID


@dataclass
class Authenticator:
    """What signing in needs from the running app; built per request from `app.state`."""

    db: Database
    settings: Settings
    keyring: Keyring
    limiter: RateLimiter
    policy: LoginPolicy

    # -- login ----------------------------------------------------------------------------------
    async def login(
        self,
        client: Client,
        *,
        email: str,
        password: str,
        totp_code: str | None = None,
        recovery_code: str | None = None,
        tenant: str | None = None,
    ) -> IssuedTokens:
        email = email.strip().lower()
        if await self.limiter.exhausted("login-ip-failures", self.policy.ip_limit, client.ip):
            log_only(Kind.LOCKOUT, ip=client.ip, scope="ip")
            raise TooManyRequests(
                "Too many failed sign-ins from this address; try again later.",
                headers={"Retry-After": str(self.policy.lockout_seconds)},
            )
        failure: ProblemError | None = None
        async with self.db.system_session() as session:
            user, tenant_row = await self._find(session, email, tenant)
            now = utcnow()
            locked = bool(user and user.locked_until and user.locked_until > now)
            ok = await passwords.verify_password_async(
                user.password_hash if user else None, password
            )
            if user is None or tenant_row is None or not ok or locked:
                reason = "unknown_email" if user is None else ("locked" if locked else "password")
                await self._failed(session, user, tenant_row, client, reason=reason, email=email)
                failure = InvalidCredentials(INVALID_CREDENTIALS)
            elif not user.active:
                repo = IdentityRepository(session, tenant_row.id)
                await record(
                    repo, Kind.LOGIN_FAILED, user_id=user.id, ip=client.ip, reason="disabled"
                )
                failure = AccountDisabled("This account is disabled; ask an administrator.")
            else:
                try:
                    tokens = await self._second_factor_then_session(
                        session, user, tenant_row, client, password, totp_code, recovery_code
                    )
                except InvalidMfaCode as exc:
                    # The password was right, so the caller may hold it: wrong codes count
                    # towards the lockout too, or six digits could be brute-forced.
                    await self._failed(session, user, tenant_row, client, reason="mfa", email=email)
                    failure = exc
            await session.commit()
        if failure is not None:
            if isinstance(failure, InvalidCredentials | InvalidMfaCode):
                await self._count_and_delay(client, email)
            raise failure
        await self.limiter.clear("login-failures", self.policy.email_limit, email)
        return tokens

    async def _find(
        self, session: AsyncSession, email: str, tenant_ref: str | None
    ) -> tuple[User | None, Tenant | None]:
        creds = CredentialRepository(session)
        tenant_id: uuid.UUID | None = None
        if tenant_ref:
            found = await creds.tenant_by_ref(tenant_ref)
            if found is None:
                return None, None
            tenant_id = found.id
        candidates = await creds.login_candidates(email, tenant_id=tenant_id)
        if len(candidates) > 1:
            raise TenantRequired(
                "This e-mail has accounts in several tenants; send `tenant` (its id or slug)."
            )
        if not candidates:
            return None, None
        user, tenant_row = candidates[0]
        # Lock the row so concurrent attempts on one account count their failures exactly.
        locked_user = await creds.user_for_update(user.id)
        return locked_user, tenant_row

    async def _failed(
        self,
        session: AsyncSession,
        user: User | None,
        tenant_row: Tenant | None,
        client: Client,
        *,
        reason: str,
        email: str,
    ) -> None:
        if user is None or tenant_row is None:
            log_only(
                Kind.LOGIN_FAILED, ip=client.ip, reason=reason, email_domain=email.partition("@")[2]
            )
            return
        repo = IdentityRepository(session, tenant_row.id)
        now = utcnow()
        await record(repo, Kind.LOGIN_FAILED, user_id=user.id, ip=client.ip, reason=reason)
        if reason == "locked":
            # Attempts during a lockout do not extend it: that would let anyone lock anyone out.
            return
        user.failed_logins += 1
        user.last_failed_login_at = now
        if user.failed_logins >= self.policy.max_failures:
            user.locked_until = now + timedelta(seconds=self.policy.lockout_seconds)
            await record(
                repo,
                Kind.LOCKOUT,
                user_id=user.id,
                ip=client.ip,
                failures=user.failed_logins,
                until=user.locked_until.isoformat(),
            )

    async def _count_and_delay(self, client: Client, email: str) -> None:
        await self.limiter.consume("login-ip-failures", self.policy.ip_limit, client.ip)
        _, state = await self.limiter.consume("login-failures", self.policy.email_limit, email)
        delay = self.policy.delay_for(state.quota - state.remaining)
        if delay:
            await asyncio.sleep(delay)

    async def _second_factor_then_session(
        self,
        session: AsyncSession,
        user: User,
        tenant_row: Tenant,
        client: Client,
        password: str,
        totp_code: str | None,
        recovery_code: str | None,
    ) -> IssuedTokens:
        repo = IdentityRepository(session, tenant_row.id)
        method = "password"
        if user.totp_secret is not None:
            if recovery_code:
                await mfa.spend_recovery_code(repo, user, recovery_code, ip=client.ip)
                method = "recovery_code"
            elif totp_code:
                await mfa.check_code(repo, self.keyring, user, totp_code)
                method = "totp"
            else:
                raise MfaRequired(
                    "Send `totp_code` (or a `recovery_code`) with e-mail and password.",
                )
        elif tenant_row.mfa_required_for_staff and user.kind == "staff":
            raise MfaEnrolmentRequired(
                "This tenant requires MFA for staff. Use `enrolment_token` as a Bearer token to "
                "POST /v1/me/mfa/enrol and /v1/me/mfa/confirm, then sign in with a code.",
                enrolment_token=mint_access_token(
                    self.keyring,
                    user_id=user.id,
                    tenant_id=tenant_row.id,
                    session_id=None,
                    ttl=ENROL_TOKEN_TTL,
                    issuer=self.settings.jwt_issuer,
                    token_type="mfa_enrol",
                ),
                enrol_url="/v1/me/mfa/enrol",
            )
        if passwords.needs_rehash(user.password_hash):
            # Parameters changed since this hash was made: upgrade it while we hold the password.
            user.password_hash = await passwords.hash_password_async(password)
        user.failed_logins = 0
        user.locked_until = None
        user.last_login_at = utcnow()
        tokens = await self._start_session(repo, user, client)
        await record(
            repo,
            Kind.LOGIN_SUCCEEDED,
            user_id=user.id,
            ip=client.ip,
            method=method,
            session_id=str(tokens.session_id),
        )
        return tokens

    async def _start_session(
        self, repo: IdentityRepository, user: User, client: Client
    ) -> IssuedTokens:
        now = utcnow()
        auth_session = AuthSession(
            tenant_id=repo.tenant_id,
            user_id=user.id,
            expires_at=now + timedelta(seconds=self.settings.refresh_token_ttl_seconds),
            ip=_inet(client.ip),
            user_agent=(client.user_agent or "")[:400] or None,
        )
        await repo.add(auth_session)
        return await self._issue(repo, user, auth_session)

    async def _issue(
        self, repo: IdentityRepository, user: User, auth_session: AuthSession
    ) -> IssuedTokens:
        refresh, refresh_hash = new_refresh_token()
        await repo.add(
            RefreshToken(
                tenant_id=repo.tenant_id, session_id=auth_session.id, token_hash=refresh_hash
            )
        )
        ttl = self.settings.access_token_ttl_seconds
        access = mint_access_token(
            self.keyring,
            user_id=user.id,
            tenant_id=repo.tenant_id,
            session_id=auth_session.id,
            ttl=timedelta(seconds=ttl),
            issuer=self.settings.jwt_issuer,
        )
        return IssuedTokens(access, refresh, ttl, auth_session.id)

    # -- refresh --------------------------------------------------------------------------------
    async def refresh(self, client: Client, refresh_token: str) -> IssuedTokens:
        """Swap a refresh token for a new pair; a second use of one revokes its whole session."""
        failure: ProblemError | None = None
        async with self.db.system_session() as session:
            found = await CredentialRepository(session).refresh_token(sha256(refresh_token))
            if found is None:
                raise InvalidToken("Unknown refresh token.")
            token, auth_session, user = found
            repo = IdentityRepository(session, token.tenant_id)
            if auth_session.revoked_at is not None or auth_session.expires_at <= utcnow():
                raise InvalidToken("This session has ended; sign in again.")
            if not user.active:
                raise InvalidToken("This account is disabled.")
            if not await repo.claim_refresh_token(token.id):
                # A used token presented again means it was copied: end the whole family.
                await repo.revoke_session(auth_session.id, reason="refresh_reuse")
                await record(
                    repo,
                    Kind.REFRESH_REUSE,
                    user_id=user.id,
                    ip=client.ip,
                    session_id=str(auth_session.id),
                )
                failure = InvalidToken(
                    "This refresh token was already used; the session is revoked. Sign in again."
                )
            else:
                tokens = await self._issue(repo, user, auth_session)
            await session.commit()
        if failure is not None:
            raise failure
        return tokens

    # -- logout ---------------------------------------------------------------------------------
    async def logout_principal(
        self, repo: IdentityRepository, principal: Principal, client: Client
    ) -> None:
        if principal.session_id is not None and await repo.revoke_session(
            principal.session_id, reason="logout"
        ):
            await record(
                repo,
                Kind.LOGOUT,
                user_id=principal.user_id,
                actor=principal,
                ip=client.ip,
                session_id=str(principal.session_id),
            )

    async def logout_refresh(self, client: Client, refresh_token: str) -> None:
        async with self.db.system_session() as session:
            found = await CredentialRepository(session).refresh_token(sha256(refresh_token))
            if found is None:
                return  # logging out an unknown token is already done
            token, auth_session, user = found
            repo = IdentityRepository(session, token.tenant_id)
            if await repo.revoke_session(auth_session.id, reason="logout"):
                await record(
                    repo,
                    Kind.LOGOUT,
                    user_id=user.id,
                    ip=client.ip,
                    session_id=str(auth_session.id),
                )
            await session.commit()


def _inet(ip: str) -> str | None:
    import ipaddress

    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None
