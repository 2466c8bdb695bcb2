"""Order arithmetic: integer minor units in, integer minor units out, one rounding rule.

Rule (see docs/orders.md): tax is computed **per line** on the line's net amount and
rounded **half-up** (half away from zero; amounts are never negative) to the minor unit.

* Per line, because the invoice prints each line with its tax and the customer adds them
  up by hand: the order's tax is exactly the sum of the printed line taxes, never a
  separately rounded figure that differs by a cent.
* Half-up, because that is the commercial rounding tax authorities and accounting
  packages expect on invoices (EU VAT, HMRC); half-even's advantage — no bias over
  millions of roundings — matters for statistics, not for a document a person checks.

Only `Decimal` touches the rate; amounts stay `int` throughout, so no float ever rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

# Largest amount (a line or an order total) accepted, in minor units. Below 2**53 so that
# every amount survives a JavaScript client's JSON parser exactly, and far below bigint.
MAX_AMOUNT_MINOR = 999_999_999_999_999
MAX_QUANTITY = 1_000_000_000
MAX_LINES = 200
HUNDRED = Decimal(100)


class AmountOverflow(ValueError):
    """An amount would exceed MAX_AMOUNT_MINOR; `field` names where."""

    def __init__(self, field: str, amount: int) -> None:
        super().__init__(f"{field} would be {amount}, above the maximum {MAX_AMOUNT_MINOR}")
        self.field = field
        self.amount = amount


@dataclass(frozen=True, slots=True)
class LineAmounts:
    quantity: int
    unit_price_minor: int
    tax_rate: Decimal
    net_minor: int
    tax_minor: int
    total_minor: int


@dataclass(frozen=True, slots=True)
class OrderAmounts:
    lines: tuple[LineAmounts, ...]
    subtotal_minor: int
    tax_minor: int
    total_minor: int


def line_tax(net_minor: int, rate_percent: Decimal) -> int:
    """Tax of one line: net × rate / 100, rounded half-up to a whole minor unit."""
    if net_minor < 0 or rate_percent < 0:
        raise ValueError("amounts and rates are never negative")
    exact = Decimal(net_minor) * rate_percent / HUNDRED
    return int(exact.to_integral_value(rounding=ROUND_HALF_UP))


def price_line(quantity: int, unit_price_minor: int, tax_rate: Decimal) -> LineAmounts:
    net = quantity * unit_price_minor
    tax = line_tax(net, tax_rate)
    return LineAmounts(quantity, unit_price_minor, tax_rate, net, tax, net + tax)


def price_order(lines: list[tuple[int, int, Decimal]]) -> OrderAmounts:
    """Price (quantity, unit_price_minor, tax_rate) lines; raises AmountOverflow by field."""
    priced: list[LineAmounts] = []
    for i, (quantity, unit_price, rate) in enumerate(lines):
        line = price_line(quantity, unit_price, rate)
        if line.total_minor > MAX_AMOUNT_MINOR:
            raise AmountOverflow(f"lines.{i}.quantity", line.total_minor)
        priced.append(line)
    subtotal = sum(line.net_minor for line in priced)
    tax = sum(line.tax_minor for line in priced)
    if subtotal + tax > MAX_AMOUNT_MINOR:
        raise AmountOverflow("lines", subtotal + tax)
    return OrderAmounts(tuple(priced), subtotal, tax, subtotal + tax)
