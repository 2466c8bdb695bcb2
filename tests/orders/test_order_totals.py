"""Order arithmetic: properties over many generated orders, and the rounding rule by example."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeflow.orders.totals import (
    MAX_AMOUNT_MINOR,
    MAX_QUANTITY,
    AmountOverflow,
    line_tax,
    price_order,
)

rates = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
lines = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=10_000),  # quantity
        st.integers(min_value=0, max_value=10_000_000),  # unit price, minor units
        rates,
    ),
    min_size=1,
    max_size=50,
)


@given(lines)
def test_lines_sum_to_the_total_and_nothing_is_negative(order_lines: list) -> None:
    amounts = price_order(order_lines)
    assert amounts.subtotal_minor == sum(line.net_minor for line in amounts.lines)
    assert amounts.tax_minor == sum(line.tax_minor for line in amounts.lines)
    assert amounts.total_minor == sum(line.total_minor for line in amounts.lines)
    assert amounts.total_minor == amounts.subtotal_minor + amounts.tax_minor
    for line, (qty, price, _) in zip(amounts.lines, order_lines, strict=True):
        assert line.net_minor == qty * price
        assert line.total_minor == line.net_minor + line.tax_minor
        assert min(line.net_minor, line.tax_minor, line.total_minor) >= 0
        assert all(isinstance(v, int) for v in (line.net_minor, line.tax_minor))


@given(st.integers(min_value=0, max_value=MAX_AMOUNT_MINOR), rates)
def test_line_tax_is_within_half_a_minor_unit_of_the_exact_tax(net: int, rate: Decimal) -> None:
    exact = Decimal(net) * rate / 100
    tax = line_tax(net, rate)
    assert abs(Decimal(tax) - exact) <= Decimal("0.5")
    # Ties go up (half away from zero), never down.
    if exact - int(exact) == Decimal("0.5"):
        assert tax == int(exact) + 1


@given(lines)
def test_order_tax_error_is_bounded_by_half_a_unit_per_line(order_lines: list) -> None:
    amounts = price_order(order_lines)
    exact = sum(Decimal(q * p) * r / 100 for q, p, r in order_lines)
    assert abs(Decimal(amounts.tax_minor) - exact) <= Decimal("0.5") * len(order_lines)


@pytest.mark.parametrize(
    ("net", "rate", "expected"),
    [
        (250, Decimal(1), 3),  # 2.5 → 3 (half-up; half-even would give 2)
        (350, Decimal(1), 4),  # 3.5 → 4 (half-even also 4)
        (249, Decimal(1), 2),  # 2.49 → 2
        (999, Decimal("20"), 200),  # 199.8 → 200
        (1, Decimal("50"), 1),  # 0.5 → 1
        (0, Decimal("20"), 0),
        (1000, Decimal("0"), 0),
        (12345, Decimal("7.6750"), 947),  # 947.47875 → 947
    ],
)
def test_rounding_rule_by_example(net: int, rate: Decimal, expected: int) -> None:
    assert line_tax(net, rate) == expected
    assert expected == int((Decimal(net) * rate / 100).quantize(Decimal(1), ROUND_HALF_UP))


def test_per_line_rounding_differs_from_rounding_the_order_and_is_what_we_do() -> None:
    # Three lines of 2.5 tax each: per line 3+3+3 = 9; on the order sum it would be 7.5 → 8.
    amounts = price_order([(1, 250, Decimal(1))] * 3)
    assert [line.tax_minor for line in amounts.lines] == [3, 3, 3]
    assert amounts.tax_minor == 9


def test_overflow_names_the_line_and_the_order() -> None:
    with pytest.raises(AmountOverflow) as one:
        price_order([(1, 1, Decimal(0)), (MAX_QUANTITY, MAX_AMOUNT_MINOR, Decimal(0))])
    assert one.value.field == "lines.1.quantity"
    half = MAX_AMOUNT_MINOR // 2 + 1
    with pytest.raises(AmountOverflow) as total:
        price_order([(1, half, Decimal(0)), (1, half, Decimal(0))])
    assert total.value.field == "lines"


def test_negative_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        line_tax(-1, Decimal(20))
    with pytest.raises(ValueError):
        line_tax(1, Decimal(-1))
