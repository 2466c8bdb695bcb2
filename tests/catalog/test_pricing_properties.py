"""Properties of the one pricing function (pure: no database, thousands of cases)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tradeflow.catalog.pricing import (
    ContractCandidate,
    ListCandidate,
    PricingInputs,
    Tier,
    decide,
    discounted,
    valid_on,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
GROUP = uuid.UUID(int=7)
OTHER_GROUP = uuid.UUID(int=8)

prices = st.integers(min_value=0, max_value=10**12)
quantities = st.integers(min_value=1, max_value=10**9)
min_quantities = st.integers(min_value=1, max_value=1000)
percents = st.decimals(min_value=0, max_value=100, places=2, allow_nan=False)
offsets = st.integers(min_value=-400, max_value=400).map(lambda d: T0 + timedelta(days=d))


@st.composite
def windows(draw: st.DrawFn) -> tuple[datetime | None, datetime | None]:
    start = draw(st.none() | offsets)
    end = draw(st.none() | offsets)
    if start is not None and end is not None and start >= end:
        start, end = end - timedelta(days=1), start + timedelta(days=1)
    return start, end


@st.composite
def tiers(draw: st.DrawFn) -> tuple[Tier, ...]:
    mins = draw(st.lists(min_quantities, min_size=1, max_size=5, unique=True))
    return tuple(Tier(uuid.uuid4(), m, draw(prices)) for m in sorted(mins))


@st.composite
def price_lists(draw: st.DrawFn) -> ListCandidate:
    start, end = draw(windows())
    return ListCandidate(
        id=uuid.uuid4(),
        name=draw(st.sampled_from(["Base", "Trade", "Promo"])),
        currency=draw(st.sampled_from(["EUR", "USD"])),
        customer_group_id=draw(st.sampled_from([None, GROUP, OTHER_GROUP])),
        valid_from=start,
        valid_to=end,
        active=draw(st.booleans()),
        tiers=draw(tiers()),
    )


@st.composite
def contracts(draw: st.DrawFn) -> ContractCandidate:
    start, end = draw(windows())
    return ContractCandidate(
        id=uuid.uuid4(),
        currency=draw(st.sampled_from(["EUR", "USD"])),
        min_quantity=draw(min_quantities),
        unit_price_minor=draw(prices),
        valid_from=start,
        valid_to=end,
    )


@st.composite
def inputs(draw: st.DrawFn) -> PricingInputs:
    return PricingInputs(
        currency="EUR",
        customer_group_id=draw(st.sampled_from([None, GROUP])),
        discount_percent=draw(percents),
        contracts=tuple(draw(st.lists(contracts(), max_size=4))),
        lists=tuple(draw(st.lists(price_lists(), max_size=5))),
    )


@settings(max_examples=100, deadline=None)
@given(inputs(), quantities, offsets)
def test_never_negative_and_in_the_customers_currency(
    data: PricingInputs, quantity: int, on: datetime
) -> None:
    decision = decide(data, quantity=quantity, on=on)
    if decision is not None:
        assert decision.unit_price_minor >= 0
        assert decision.currency == "EUR"
        assert decision.min_quantity <= quantity


@settings(max_examples=100, deadline=None)
@given(inputs(), quantities, offsets)
def test_precedence_contract_then_group_list_then_base(
    data: PricingInputs, quantity: int, on: datetime
) -> None:
    decision = decide(data, quantity=quantity, on=on)
    usable_contract = any(
        c.currency == "EUR"
        and c.min_quantity <= quantity
        and valid_on(c.valid_from, c.valid_to, on)
        for c in data.contracts
    )

    def list_applies(pl: ListCandidate, group: uuid.UUID | None) -> bool:
        return (
            pl.customer_group_id == group
            and pl.currency == "EUR"
            and pl.active
            and valid_on(pl.valid_from, pl.valid_to, on)
            and any(t.min_quantity <= quantity for t in pl.tiers)
        )

    group_list = data.customer_group_id is not None and any(
        list_applies(pl, data.customer_group_id) for pl in data.lists
    )
    base_list = any(list_applies(pl, None) for pl in data.lists)
    if usable_contract:
        assert decision is not None
        assert decision.kind == "contract"
    elif group_list:
        assert decision is not None
        assert decision.kind == "price_list"
    elif base_list:
        assert decision is not None
        assert decision.kind in ("base", "group_discount")
        assert (decision.kind == "group_discount") == (data.discount_percent > 0)
    else:
        assert decision is None
    # Prices of another group never apply.
    if decision is not None and decision.kind == "price_list":
        chosen = next(pl for pl in data.lists if pl.id == decision.rule_id)
        assert chosen.customer_group_id == data.customer_group_id


@given(tiers(), st.data())
def test_quantity_exactly_at_a_tier_minimum_picks_that_tier(
    list_tiers: tuple[Tier, ...], data: st.DataObject
) -> None:
    base = ListCandidate(uuid.uuid4(), "Base", "EUR", None, None, None, True, list_tiers)
    inp = PricingInputs(currency="EUR", customer_group_id=None, lists=(base,))
    tier = data.draw(st.sampled_from(list_tiers))
    at = decide(inp, quantity=tier.min_quantity, on=T0)
    assert at is not None
    assert (at.unit_price_minor, at.min_quantity) == (tier.unit_price_minor, tier.min_quantity)
    below = tier.min_quantity - 1
    if below >= 1:
        under = decide(inp, quantity=below, on=T0)
        assert under is None or under.min_quantity < tier.min_quantity
    # Any quantity picks the highest tier whose minimum it reaches.
    quantity = data.draw(quantities)
    reached = [t for t in list_tiers if t.min_quantity <= quantity]
    got = decide(inp, quantity=quantity, on=T0)
    if reached:
        best = max(reached, key=lambda t: t.min_quantity)
        assert got is not None
        assert got.unit_price_minor == best.unit_price_minor
    else:
        assert got is None


@given(windows(), offsets, prices)
def test_validity_window_includes_start_excludes_end(
    window: tuple[datetime | None, datetime | None], on: datetime, price: int
) -> None:
    start, end = window
    contract = ContractCandidate(uuid.uuid4(), "EUR", 1, price, start, end)
    inp = PricingInputs(currency="EUR", customer_group_id=None, contracts=(contract,))
    expected = (start is None or start <= on) and (end is None or on < end)
    assert (decide(inp, quantity=1, on=on) is not None) == expected
    if start is not None:
        assert decide(inp, quantity=1, on=start) is not None or (end is not None and end <= start)
        assert decide(inp, quantity=1, on=start - timedelta(microseconds=1)) is None
    if end is not None:
        assert decide(inp, quantity=1, on=end) is None
        if start is None or start < end - timedelta(microseconds=1):
            assert decide(inp, quantity=1, on=end - timedelta(microseconds=1)) is not None


@given(prices, percents)
def test_discount_rounds_half_up_and_stays_in_range(price: int, percent: Decimal) -> None:
    got = discounted(price, percent)
    exact = Decimal(price) * (100 - percent) / 100
    assert 0 <= got <= price
    assert abs(Decimal(got) - exact) <= Decimal("0.5")
    if exact - int(exact) == Decimal("0.5"):
        assert got == int(exact) + 1  # half-up, not banker's rounding


def test_discount_examples() -> None:
    assert discounted(999, Decimal("12.5")) == 874  # 874.125
    assert discounted(1, Decimal(50)) == 1  # 0.5 rounds up
    assert discounted(3, Decimal(50)) == 2  # 1.5 rounds up
    assert discounted(1000, Decimal(100)) == 0
    assert discounted(1000, Decimal(0)) == 1000


def test_latest_list_wins_and_explanation_names_the_losers() -> None:
    old = ListCandidate(
        uuid.UUID(int=1), "Trade 2024", "EUR", GROUP, T0 - timedelta(days=365), None, True,
        (Tier(uuid.uuid4(), 1, 900),),
    )  # fmt: skip
    new = ListCandidate(
        uuid.UUID(int=2), "Trade 2025", "EUR", GROUP, T0, None, True, (Tier(uuid.uuid4(), 1, 850),)
    )
    base = ListCandidate(
        uuid.UUID(int=3), "Base", "EUR", None, None, None, True, (Tier(uuid.uuid4(), 1, 1000),)
    )
    inp = PricingInputs(
        currency="EUR",
        customer_group_id=GROUP,
        group_name="Trade",
        discount_percent=Decimal(10),
        lists=(old, new, base),
    )
    d = decide(inp, quantity=5, on=T0 + timedelta(days=1))
    assert d is not None
    assert (d.kind, d.rule_name, d.unit_price_minor) == ("price_list", "Trade 2025", 850)
    assert "Trade 2025" in d.detail
    assert "Trade" in d.detail
    assert d.considered == ("group_discount 'Base': 900",)
    before = decide(inp, quantity=5, on=T0 - timedelta(days=1))
    assert before is not None
    assert before.rule_name == "Trade 2024"


def test_inputs_are_checked() -> None:
    inp = PricingInputs(currency="EUR", customer_group_id=None)
    for bad in ({"quantity": 0, "on": T0}, {"quantity": 1, "on": T0.replace(tzinfo=None)}):
        try:
            decide(inp, **bad)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")
