"""Problems the identity context answers with (RFC 9457, via `tradeflow.errors`)."""

from __future__ import annotations

from tradeflow.errors import Conflict, Forbidden, NotFound, Unauthorized, UnprocessableEntity


class InvalidCredentials(Unauthorized):
    """One answer for unknown e-mail, wrong password and lockout, so none can be told apart."""

    slug, title = "invalid-credentials", "Invalid credentials"


class AccountDisabled(Unauthorized):
    slug, title = "account-disabled", "Account disabled"


class MfaRequired(Unauthorized):
    """The password was right; a TOTP or recovery code is needed to finish logging in."""

    slug, title = "mfa-required", "Multi-factor authentication required"


class MfaEnrolmentRequired(Unauthorized):
    """The tenant requires MFA and the user has none yet; carries a token that can only enrol."""

    slug, title = "mfa-enrolment-required", "Multi-factor enrolment required"


class InvalidMfaCode(Unauthorized):
    slug, title = "invalid-mfa-code", "Invalid or already used MFA code"


class InvalidToken(Unauthorized):
    slug, title = "invalid-token", "Invalid or expired token"


class TenantRequired(UnprocessableEntity):
    slug, title = "tenant-required", "Tenant required"


class WeakPassword(UnprocessableEntity):
    slug, title = "weak-password", "Password not acceptable"


class MissingScopes(Forbidden):
    slug, title = "insufficient-scope", "Missing permission scopes"


class UserOnly(Forbidden):
    slug, title = "user-only", "Only a signed-in user can do this"


class MfaAlreadyEnabled(Conflict):
    slug, title = "mfa-already-enabled", "MFA is already enabled"


class MfaNotEnabled(Conflict):
    slug, title = "mfa-not-enabled", "MFA is not enabled"


class MfaPolicyConflict(Conflict):
    slug, title = "mfa-required-by-policy", "MFA is required by the tenant's policy"


class EmailTaken(Conflict):
    slug, title = "email-taken", "E-mail already in use"


class SlugTaken(Conflict):
    slug, title = "slug-taken", "Tenant slug already in use"


class ScopesNotHeld(UnprocessableEntity):
    slug, title = "scopes-not-held", "Scopes beyond the creator's"


class UserNotFound(NotFound):
    slug, title = "not-found", "User not found"


class ApiKeyNotFound(NotFound):
    slug, title = "not-found", "API key not found"


class LastOwner(Conflict):
    slug, title = "last-owner", "A tenant keeps at least one active owner"
