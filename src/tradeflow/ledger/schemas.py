"""What the ledger accepts and returns — the API's bodies and `service.py`'s views."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# One entry's amounts stay far below bigint even summed over many lines; 10^15 minor units
# is ten trillion in a two-decimal currency.
MAX_AMOUNT_MINOR = 10**15
MAX_LINES = 100

Currency = Annotated[
    str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.", examples=["EUR"])
]
AmountMinor = Annotated[int, Field(ge=0, le=MAX_AMOUNT_MINOR, description="Minor units.")]


def _plain_text(value: str) -> str:
    """PostgreSQL refuses NUL and asyncpg a lone surrogate: refuse control, surrogate,
    private-use and unassigned characters as a 422 rather than fail in the database."""
    value = unicodedata.normalize("NFC", value).strip()
    for ch in value:
        if unicodedata.category(ch) in {"Cc", "Cs", "Co", "Cn"} and ch not in "\n\t":
            raise ValueError(f"contains a disallowed character U+{ord(ch):04X}")
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59-05:00 is past year 9999 in UTC
        raise ValueError("is outside the supported range of dates") from exc


def _non_blank(value: str) -> str:
    if not value:
        raise ValueError("must not be blank")
    return value


PlainText = Annotated[str, AfterValidator(_plain_text)]
RequiredText = Annotated[str, AfterValidator(_plain_text), AfterValidator(_non_blank)]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
"""An ISO 8601 moment with a zone (naive times are refused), held in UTC."""


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"


class Side(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"


NORMAL_BALANCE: dict[AccountType, Side] = {
    AccountType.ASSET: Side.DEBIT,
    AccountType.EXPENSE: Side.DEBIT,
    AccountType.LIABILITY: Side.CREDIT,
    AccountType.EQUITY: Side.CREDIT,
    AccountType.REVENUE: Side.CREDIT,
}


class EntryKind(StrEnum):
    EVENT = "event"
    REVERSAL = "reversal"
    MANUAL = "manual"


def signed_balance(normal_balance: str, debit_minor: int, credit_minor: int) -> int:
    """The balance in the account's own sense: positive when on its normal side."""
    net = debit_minor - credit_minor
    return net if normal_balance == Side.DEBIT else -net


# -- accounts ----------------------------------------------------------------------------------


class AccountIn(BaseModel):
    """A new account in the tenant's chart."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        description="Unique in the chart, e.g. `1210` or `bank:eur`.",
    )
    name: RequiredText = Field(min_length=1, max_length=200)
    type: AccountType
    normal_balance: Side | None = Field(
        default=None,
        description="Defaults from `type` (assets and expenses debit, the rest credit); set "
        "it for contra accounts.",
    )
    description: PlainText = Field(default="", max_length=500)


class AccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    name: str
    type: AccountType
    normal_balance: Side
    system_key: str | None = Field(
        description="Set on the accounts the posting rules use (`receivables`, `revenue`, …)."
    )
    description: str
    created_at: datetime


# -- entries -----------------------------------------------------------------------------------


class LineOut(BaseModel):
    id: uuid.UUID
    line_no: int
    account_id: uuid.UUID
    account_code: str
    debit_minor: int
    credit_minor: int
    customer_id: uuid.UUID | None
    memo: str | None


class EntryOut(BaseModel):
    id: uuid.UUID
    kind: EntryKind
    currency: str
    description: str
    source_event_id: uuid.UUID | None = Field(
        description="The event this entry books; an event is posted at most once."
    )
    source_event_type: str | None
    reverses_entry_id: uuid.UUID | None
    reversed_by_entry_id: uuid.UUID | None
    refs: dict[str, str] = Field(
        description="Ids of the documents booked: invoice_id, order_id, payment_id, customer_id…"
    )
    occurred_at: datetime = Field(description="When the booked fact happened.")
    posted_at: datetime = Field(description="When the entry was written to the journal.")
    posted_by: str | None
    total_minor: int = Field(description="Sum of the debits (= sum of the credits).")
    lines: list[LineOut]


class ManualLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: uuid.UUID | None = None
    account_code: str | None = Field(default=None, max_length=40)
    debit_minor: AmountMinor = 0
    credit_minor: AmountMinor = 0
    customer_id: uuid.UUID | None = None
    memo: PlainText | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_account_one_side(self) -> ManualLineIn:
        if (self.account_id is None) == (self.account_code is None):
            raise ValueError("give exactly one of account_id and account_code")
        if (self.debit_minor > 0) == (self.credit_minor > 0):
            raise ValueError("a line is a positive debit_minor or a positive credit_minor")
        return self


class ManualEntryIn(BaseModel):
    """A journal entry written by hand (adjustments, opening balances)."""

    model_config = ConfigDict(extra="forbid")

    currency: Currency
    description: RequiredText = Field(min_length=1, max_length=500)
    occurred_at: UtcDatetime | None = Field(
        default=None, description="When the booked fact happened; defaults to now."
    )
    lines: list[ManualLineIn] = Field(min_length=2, max_length=MAX_LINES)


class ReverseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: PlainText | None = Field(
        default=None, max_length=500, description="Why; defaults to 'Reversal of …'."
    )


# -- reports -----------------------------------------------------------------------------------


class TrialBalanceRow(BaseModel):
    account_id: uuid.UUID
    code: str
    name: str
    type: AccountType
    normal_balance: Side
    currency: str
    debit_minor: int
    credit_minor: int
    balance_minor: int = Field(description="Debits minus credits, signed to the normal side.")


class TrialBalanceTotal(BaseModel):
    currency: str
    debit_minor: int
    credit_minor: int
    balanced: bool


class TrialBalance(BaseModel):
    """Per account and currency, total debits and credits; per currency, totals that balance."""

    as_of: datetime | None
    generated_at: datetime
    accounts: list[TrialBalanceRow]
    totals: list[TrialBalanceTotal]
    balanced: bool = Field(description="True when debits equal credits in every currency.")


class StatementLine(BaseModel):
    line_id: uuid.UUID
    entry_id: uuid.UUID
    posted_at: datetime
    description: str
    memo: str | None
    customer_id: uuid.UUID | None
    debit_minor: int
    credit_minor: int
    balance_minor: int = Field(description="Running balance after this line (normal side).")


class Statement(BaseModel):
    account: AccountOut
    currency: str
    posted_from: datetime | None
    posted_to: datetime | None
    opening_balance_minor: int = Field(description="Balance before the first item of this page.")
    closing_balance_minor: int = Field(description="Balance after the last item of this page.")
    items: list[StatementLine]
    next_cursor: str | None


class CustomerCurrencyBalance(BaseModel):
    currency: str
    debit_minor: int
    credit_minor: int
    balance_minor: int = Field(description="Owed by the customer (negative: a credit in hand).")


class CustomerBalance(BaseModel):
    """Receivables of one customer, from the lines that carry its id."""

    customer_id: uuid.UUID
    as_of: datetime | None
    balances: list[CustomerCurrencyBalance]


class PostingResult(BaseModel):
    """What posting an event did: the entry (new or already there), or why there is none."""

    entry_id: uuid.UUID | None
    created: bool
    skipped_reason: str | None = None


class BooksCheck(BaseModel):
    """An independent re-check of a tenant's books (the database enforces the same rules)."""

    entries: int
    lines: int
    unbalanced_entry_ids: list[uuid.UUID] = Field(description="At most 100 are listed.")
    trial_balance: TrialBalance

    @property
    def ok(self) -> bool:
        return not self.unbalanced_entry_ids and self.trial_balance.balanced
