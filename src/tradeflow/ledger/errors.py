"""Problems the ledger answers with (RFC 9457, see `tradeflow.errors`)."""

from __future__ import annotations

from typing import Any

from tradeflow.errors import Conflict, NotFound, UnprocessableEntity


class AccountNotFound(NotFound):
    slug, title = "ledger-account-not-found", "Ledger account not found"


class EntryNotFound(NotFound):
    slug, title = "ledger-entry-not-found", "Journal entry not found"


class AccountCodeTaken(Conflict):
    slug, title = "ledger-account-code-taken", "An account with this code exists"


class EntryAlreadyReversed(Conflict):
    """An entry is reversed at most once; the problem names the reversing entry."""

    slug, title = "ledger-entry-already-reversed", "Journal entry already reversed"


class UnbalancedEntry(UnprocessableEntity):
    """Debits and credits of the proposed entry differ, or it has fewer than two lines."""

    slug, title = "ledger-entry-unbalanced", "Journal entry does not balance"


class InvalidEntry(UnprocessableEntity):
    """A line of a proposed entry is not acceptable; `errors` names each one."""

    slug, title = "ledger-entry-invalid", "Journal entry is not valid"

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        super().__init__(summary, errors=errors)


class CurrencyRequired(UnprocessableEntity):
    """The account holds several currencies; a running balance needs one."""

    slug, title = "ledger-currency-required", "Choose a currency"


class PostingFailed(Exception):
    """An event could not be posted; the events engine retries the handler, then dead-letters it."""


class PostingDeferred(PostingFailed):
    """A fact the posting needs has not reached the ledger yet (e.g. the invoice of a payment)."""


class InvalidEventPayload(PostingFailed):
    """The event's payload does not carry what its posting rule needs; retrying will not help."""
