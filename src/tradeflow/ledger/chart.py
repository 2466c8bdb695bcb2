"""The chart of accounts every tenant starts with; posting rules address accounts by key.

Codes follow a common numbering (1xxx assets, 2xxx liabilities, 3xxx equity, 4xxx
revenue, 6xxx expenses). A tenant adds accounts through the API; the seeded ones
keep their `system_key`, which is what the posting rules look up, so the
rules keep working whatever the tenant adds.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradeflow.ledger.schemas import AccountType, Side


@dataclass(frozen=True, slots=True)
class DefaultAccount:
    key: str
    code: str
    name: str
    type: AccountType
    normal_balance: Side
    description: str


CASH = "cash"
PROCESSOR_CLEARING = "processor_clearing"
RECEIVABLES = "receivables"
TAX_PAYABLE = "tax_payable"
REVENUE = "revenue"
REFUNDS = "refunds"
PROCESSOR_FEES = "processor_fees"

DEFAULT_CHART: tuple[DefaultAccount, ...] = (
    DefaultAccount(
        CASH,
        "1000",
        "Cash at bank",
        AccountType.ASSET,
        Side.DEBIT,
        "Money received directly (bank transfer, cash), and processor payouts.",
    ),
    DefaultAccount(
        PROCESSOR_CLEARING,
        "1050",
        "Processor clearing",
        AccountType.ASSET,
        Side.DEBIT,
        "Captured by a payment processor, not yet paid out to the bank.",
    ),
    DefaultAccount(
        RECEIVABLES,
        "1100",
        "Accounts receivable",
        AccountType.ASSET,
        Side.DEBIT,
        "Invoiced to customers and not yet paid; lines carry the customer.",
    ),
    DefaultAccount(
        TAX_PAYABLE,
        "2100",
        "Sales tax payable",
        AccountType.LIABILITY,
        Side.CREDIT,
        "Tax charged on invoices, owed to the tax authority.",
    ),
    DefaultAccount(
        REVENUE,
        "4000",
        "Sales revenue",
        AccountType.REVENUE,
        Side.CREDIT,
        "Invoiced sales, net of tax.",
    ),
    DefaultAccount(
        REFUNDS,
        "4100",
        "Sales refunds",
        AccountType.REVENUE,
        Side.DEBIT,
        "Money returned to customers (a contra-revenue account).",
    ),
    DefaultAccount(
        PROCESSOR_FEES,
        "6100",
        "Payment processing fees",
        AccountType.EXPENSE,
        Side.DEBIT,
        "Fees the payment processor kept.",
    ),
)

DEFAULT_KEYS = frozenset(a.key for a in DEFAULT_CHART)
