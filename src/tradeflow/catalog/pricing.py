"""The one pricing function: (customer, SKU, quantity, date) → unit price and the rule that won.

Pure: it takes the candidate prices already loaded (`PricingInputs`) and
decides; it never touches the database, the clock or the cache, so it can be
property-tested exhaustively and cached around freely. `docs/pricing.md`
explains the rules to people; this module is the rules.

Precedence, first that applies wins:

1. **contract** — a contract price of this customer for this SKU, in the
   customer's currency, valid on the date, whose `min_quantity` ≤ quantity.
   Among several: the highest `min_quantity` (the best tier reached), then the
   latest `valid_from`, then the newest.
2. **price_list** — the customer's group's price lists in the customer's
   currency, active and valid on the date, that have a tier for this SKU with
   `min_quantity` ≤ quantity. The list with the latest `valid_from` (then the
   newest) is chosen; within it, the highest such tier.
3. **group_discount** / **base** — the same choice among the base price lists
   (no group) of the customer's currency; if the customer's group has a
   discount, it is taken off that base price (`group_discount`), else the base
   price stands (`base`).

Validity windows include their start and exclude their end; an open bound is
unbounded. A discounted price is rounded half-up to a whole minor unit (so
999 less 12.5 % = 874.125 → 874, and 1 less 50 % = 0.5 → 1). Prices are
integers ≥ 0 and a discount is between 0 and 100 %, so no price is negative.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

RuleKind = Literal["contract", "price_list", "group_discount", "base"]

_EARLIEST = datetime.min.replace(tzinfo=UTC)  # sorts before every real valid_from


@dataclass(frozen=True, slots=True)
class Tier:
    entry_id: uuid.UUID
    min_quantity: int
    unit_price_minor: int


@dataclass(frozen=True, slots=True)
class ListCandidate:
    """One price list with its tiers for the SKU being priced."""

    id: uuid.UUID
    name: str
    currency: str
    customer_group_id: uuid.UUID | None  # None: a base price list
    valid_from: datetime | None
    valid_to: datetime | None
    active: bool
    tiers: tuple[Tier, ...]


@dataclass(frozen=True, slots=True)
class ContractCandidate:
    id: uuid.UUID
    currency: str
    min_quantity: int
    unit_price_minor: int
    valid_from: datetime | None
    valid_to: datetime | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class PricingInputs:
    """Everything that can price one SKU for one customer."""

    currency: str  # the customer's currency
    customer_group_id: uuid.UUID | None
    group_name: str | None = None
    discount_percent: Decimal = Decimal(0)
    contracts: tuple[ContractCandidate, ...] = ()
    lists: tuple[ListCandidate, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    unit_price_minor: int
    currency: str
    kind: RuleKind
    rule_id: uuid.UUID
    rule_name: str
    min_quantity: int
    detail: str
    considered: tuple[str, ...] = field(default=())  # rules that applied but lost, best first


def valid_on(valid_from: datetime | None, valid_to: datetime | None, on: datetime) -> bool:
    """Inclusive start, exclusive end; None is unbounded."""
    return (valid_from is None or valid_from <= on) and (valid_to is None or on < valid_to)


def discounted(price_minor: int, percent: Decimal) -> int:
    """`price_minor` less `percent` %, rounded half-up to a whole minor unit."""
    if not Decimal(0) <= percent <= Decimal(100):
        raise ValueError("discount must be between 0 and 100 %")
    exact = Decimal(price_minor) * (Decimal(100) - percent) / Decimal(100)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _key_from(valid_from: datetime | None) -> datetime:
    # An open start sorts before every real one: a list that starts later is more specific.
    return valid_from if valid_from is not None else _EARLIEST


def _window(valid_from: datetime | None, valid_to: datetime | None) -> str:
    start = valid_from.isoformat() if valid_from else "always"
    end = valid_to.isoformat() if valid_to else "open-ended"
    return f"valid {start} → {end}"


def _best_contract(
    contracts: Iterable[ContractCandidate], *, currency: str, quantity: int, on: datetime
) -> ContractCandidate | None:
    usable = [
        c
        for c in contracts
        if c.currency == currency
        and c.min_quantity <= quantity
        and valid_on(c.valid_from, c.valid_to, on)
    ]
    if not usable:
        return None
    return max(usable, key=lambda c: (c.min_quantity, _key_from(c.valid_from), c.id))


def _best_list(
    lists: Iterable[ListCandidate], *, quantity: int, on: datetime
) -> tuple[ListCandidate, Tier] | None:
    best: tuple[ListCandidate, Tier] | None = None
    for candidate in lists:
        if not candidate.active or not valid_on(candidate.valid_from, candidate.valid_to, on):
            continue
        tiers = [t for t in candidate.tiers if t.min_quantity <= quantity]
        if not tiers:
            continue  # no tier reached: this list does not price this quantity
        tier = max(tiers, key=lambda t: t.min_quantity)
        if best is None or (_key_from(candidate.valid_from), candidate.id) > (
            _key_from(best[0].valid_from),
            best[0].id,
        ):
            best = (candidate, tier)
    return best


def decide(inputs: PricingInputs, *, quantity: int, on: datetime) -> Decision | None:
    """The unit price of one SKU for one customer, or None when no rule prices it."""
    if quantity < 1:
        raise ValueError("quantity must be at least 1")
    if on.tzinfo is None:
        raise ValueError("`on` must be timezone-aware")
    currency = inputs.currency
    found: list[Decision] = []

    contract = _best_contract(inputs.contracts, currency=currency, quantity=quantity, on=on)
    if contract is not None:
        found.append(
            Decision(
                unit_price_minor=contract.unit_price_minor,
                currency=currency,
                kind="contract",
                rule_id=contract.id,
                rule_name=contract.note or "contract price",
                min_quantity=contract.min_quantity,
                detail=(
                    f"Contract price for this customer from {contract.min_quantity} unit(s), "
                    f"{_window(contract.valid_from, contract.valid_to)}."
                ),
            )
        )

    if inputs.customer_group_id is not None:
        group_lists = [
            c
            for c in inputs.lists
            if c.customer_group_id == inputs.customer_group_id and c.currency == currency
        ]
        chosen = _best_list(group_lists, quantity=quantity, on=on)
        if chosen is not None:
            price_list, tier = chosen
            found.append(
                Decision(
                    unit_price_minor=tier.unit_price_minor,
                    currency=currency,
                    kind="price_list",
                    rule_id=price_list.id,
                    rule_name=price_list.name,
                    min_quantity=tier.min_quantity,
                    detail=(
                        f"Price list '{price_list.name}' of customer group "
                        f"'{inputs.group_name or inputs.customer_group_id}', tier from "
                        f"{tier.min_quantity} unit(s), "
                        f"{_window(price_list.valid_from, price_list.valid_to)}."
                    ),
                )
            )

    base_lists = [c for c in inputs.lists if c.customer_group_id is None and c.currency == currency]
    chosen = _best_list(base_lists, quantity=quantity, on=on)
    if chosen is not None:
        price_list, tier = chosen
        percent = inputs.discount_percent
        window = _window(price_list.valid_from, price_list.valid_to)
        if percent > 0:
            price = discounted(tier.unit_price_minor, percent)
            found.append(
                Decision(
                    unit_price_minor=price,
                    currency=currency,
                    kind="group_discount",
                    rule_id=price_list.id,
                    rule_name=price_list.name,
                    min_quantity=tier.min_quantity,
                    detail=(
                        f"Base price {tier.unit_price_minor} from price list "
                        f"'{price_list.name}' (tier from {tier.min_quantity} unit(s), {window}) "
                        f"less the {percent.normalize():f} % discount of customer group "
                        f"'{inputs.group_name or inputs.customer_group_id}', rounded half-up."
                    ),
                )
            )
        else:
            found.append(
                Decision(
                    unit_price_minor=tier.unit_price_minor,
                    currency=currency,
                    kind="base",
                    rule_id=price_list.id,
                    rule_name=price_list.name,
                    min_quantity=tier.min_quantity,
                    detail=(
                        f"Base price from price list '{price_list.name}', tier from "
                        f"{tier.min_quantity} unit(s), {window}."
                    ),
                )
            )

    if not found:
        return None
    winner, *losers = found
    if not losers:
        return winner
    return Decision(
        unit_price_minor=winner.unit_price_minor,
        currency=winner.currency,
        kind=winner.kind,
        rule_id=winner.rule_id,
        rule_name=winner.rule_name,
        min_quantity=winner.min_quantity,
        detail=winner.detail,
        considered=tuple(f"{d.kind} '{d.rule_name}': {d.unit_price_minor}" for d in losers),
    )
