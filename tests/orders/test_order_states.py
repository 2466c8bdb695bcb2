"""The order state machine as a table: every legal move, and that nothing else is."""

from __future__ import annotations

import itertools

import pytest

from tradeflow.orders.states import EVENT, TERMINAL, OrderStatus, allowed_actions, can_transition

S = OrderStatus

LEGAL = {
    (S.PLACED, S.PENDING_APPROVAL),
    (S.PENDING_APPROVAL, S.APPROVED),
    (S.PENDING_APPROVAL, S.REJECTED),
    (S.PLACED, S.CONFIRMED),
    (S.APPROVED, S.CONFIRMED),
    (S.CONFIRMED, S.INVOICED),
    (S.INVOICED, S.PARTIALLY_PAID),
    (S.PARTIALLY_PAID, S.PARTIALLY_PAID),
    (S.INVOICED, S.PAID),
    (S.PARTIALLY_PAID, S.PAID),
    (S.PAID, S.FULFILLED),
    (S.PLACED, S.CANCELLED),
    (S.PENDING_APPROVAL, S.CANCELLED),
    (S.APPROVED, S.CANCELLED),
    (S.CONFIRMED, S.CANCELLED),
    (S.INVOICED, S.CANCELLED),
    (S.PARTIALLY_PAID, S.REFUNDED),
    (S.PAID, S.REFUNDED),
    (S.FULFILLED, S.REFUNDED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_exactly_the_documented_transitions_are_legal(current: S, target: S) -> None:
    assert can_transition(current, target) == ((current, target) in LEGAL)


def test_terminal_states_lead_nowhere() -> None:
    for state in TERMINAL:
        assert not any(can_transition(state, t) for t in S)
        assert allowed_actions(state) == []


def test_every_state_has_an_event_type() -> None:
    assert set(EVENT) == set(S)
    assert all(name.startswith("order.") for name in EVENT.values())


def test_actions_offered() -> None:
    assert allowed_actions(S.PLACED) == ["confirm", "cancel"]
    assert allowed_actions(S.PENDING_APPROVAL) == ["approve", "reject", "cancel"]
    assert allowed_actions(S.PAID) == ["fulfil"]
    assert allowed_actions(S.INVOICED) == ["cancel"]
