"""The order state machine: which transitions exist, and the event each one emits.

    placed ──(over the buyer's spending limit)──▶ pending_approval ─┬─▶ approved
      │                                                            └─▶ rejected
      └───────────────┬──────────────────────────────────────────────────┘
                      ▼ confirm (credit check, invoice issued)
                  confirmed ──▶ invoiced ──▶ partially_paid ──▶ paid ──▶ fulfilled
    cancelled: from placed, pending_approval, approved, confirmed, or invoiced with nothing paid
    refunded:  from partially_paid, paid or fulfilled once everything paid was refunded

Payment states (partially_paid, paid, refunded) are reached only from payment facts (the
handlers), never by a client call; the rest through `/v1/orders/{id}/<action>`.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    PLACED = "placed"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    CONFIRMED = "confirmed"
    INVOICED = "invoiced"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


S = OrderStatus

# target -> the states it may be reached from
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_APPROVAL: frozenset({S.PLACED}),
    S.APPROVED: frozenset({S.PENDING_APPROVAL}),
    S.REJECTED: frozenset({S.PENDING_APPROVAL}),
    S.CONFIRMED: frozenset({S.PLACED, S.APPROVED}),
    S.INVOICED: frozenset({S.CONFIRMED}),
    S.PARTIALLY_PAID: frozenset({S.INVOICED, S.PARTIALLY_PAID}),
    S.PAID: frozenset({S.INVOICED, S.PARTIALLY_PAID}),
    S.FULFILLED: frozenset({S.PAID}),
    S.CANCELLED: frozenset({S.PLACED, S.PENDING_APPROVAL, S.APPROVED, S.CONFIRMED, S.INVOICED}),
    S.REFUNDED: frozenset({S.PARTIALLY_PAID, S.PAID, S.FULFILLED}),
}

# The event each transition emits (type = f"order.{EVENT[target]}").
EVENT: dict[OrderStatus, str] = {
    S.PLACED: "order.created",
    S.PENDING_APPROVAL: "order.approval_requested",
    S.APPROVED: "order.approved",
    S.REJECTED: "order.rejected",
    S.CONFIRMED: "order.confirmed",
    S.INVOICED: "order.invoiced",
    S.PARTIALLY_PAID: "order.partially_paid",
    S.PAID: "order.paid",
    S.FULFILLED: "order.fulfilled",
    S.CANCELLED: "order.cancelled",
    S.REFUNDED: "order.refunded",
}

TERMINAL: frozenset[OrderStatus] = frozenset({S.REJECTED, S.CANCELLED, S.REFUNDED})


def can_transition(current: OrderStatus, target: OrderStatus) -> bool:
    return current in TRANSITIONS.get(target, frozenset())


def allowed_actions(current: OrderStatus) -> list[str]:
    """The client actions possible from `current` (for the order's `actions` field)."""
    actions = {
        "approve": S.APPROVED,
        "reject": S.REJECTED,
        "confirm": S.CONFIRMED,
        "cancel": S.CANCELLED,
        "fulfil": S.FULFILLED,
    }
    return [name for name, target in actions.items() if can_transition(current, target)]
