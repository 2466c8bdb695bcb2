"""Orders use cases: place an order, change it, move it through its states.

Every function runs inside the caller's transaction and never commits; every state change
publishes its event through the outbox in that same transaction. Invoices and payment facts
live in `invoicing.py`; `get_invoice` is re-exported here as the context's public contract.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic_core import to_jsonable_python

from tradeflow.catalog import service as catalog
from tradeflow.customers import service as customers
from tradeflow.db import driver_connection
from tradeflow.errors import Forbidden, NotFound, ProblemError
from tradeflow.events.outbox import publish, publish_on_driver
from tradeflow.identity.principal import Principal
from tradeflow.kit.ids import uuid7
from tradeflow.kit.time import utcnow
from tradeflow.orders import events as ev
from tradeflow.orders.errors import (
    ApproverRequired,
    IfMatchRequired,
    IllegalTransition,
    InvalidOrder,
    NotYourCustomer,
    OrderNotFound,
    StaleVersion,
)
from tradeflow.orders.invoicing import (
    cancel_invoice,
    get_invoice,
    issue_invoice,
)
from tradeflow.orders.models import Order, OrderLine
from tradeflow.orders.repository import OrdersRepository
from tradeflow.orders.schemas import (
    OrderCreate,
    OrderLineOut,
    OrderOut,
    OrderPatch,
)
from tradeflow.orders.states import OrderStatus, allowed_actions, can_transition
from tradeflow.orders.totals import AmountOverflow, price_order

__all__ = [
    "apply_patch",
    "get_invoice",
    "get_order",
    "place_order",
    "transition",
]

S = OrderStatus


def caller_of(principal: Principal) -> str:
    return f"{principal.kind}:{principal.id}"


def _rule_dict(rule: Any) -> dict[str, Any]:
    """The winning rule as JSON-ready data (pydantic's encoder: models, dataclasses, UUIDs)."""
    out: dict[str, Any] = to_jsonable_python(rule)
    return out


def _fact(order: Order, previous: str | None, status: str | None = None) -> dict[str, Any]:
    return {
        "order_id": order.id,
        "customer_id": order.customer_id,
        "status": status or order.status,
        "previous_status": previous,
        "currency": order.currency,
        "total_minor": order.total_minor,
        "version": order.version,
    }


def _visible(principal: Principal, order: Order) -> bool:
    return not principal.is_buyer or order.customer_id == principal.customer_id


# -- placing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PricedLine:
    line_no: int
    quote: Any
    tax_code: str | None
    tax_rate: Decimal


async def place_order(session: Any, principal: Principal, body: OrderCreate) -> OrderOut:
    """Validate, price, snapshot and insert an order with its `order.created` event."""
    if principal.is_buyer and body.customer_id != principal.customer_id:
        raise NotYourCustomer(
            "A buyer places orders for their own company only.", field="customer_id"
        )
    repo = OrdersRepository(session, principal.tenant_id)
    # The other contexts' service functions find the tenant here instead of asking PostgreSQL.
    session.info.setdefault("tenant_id", principal.tenant_id)
    rates = await repo.active_tax_rates()
    by_code = {code: rate for _, code, rate, _ in rates}
    default = next(((code, rate) for _, code, rate, is_default in rates if is_default), None)
    now = utcnow()
    try:
        # The catalog reads the customer once for all lines (unknown or inactive → its error);
        # every line it prices has a known, active SKU.
        quotes = await catalog.quote_many(
            session,
            customer_id=body.customer_id,
            lines=[(line.sku, line.quantity) for line in body.lines],
            on=now,
        )
    except ProblemError as exc:
        # Name every unknown or inactive SKU and unknown tax code first, as before pricing.
        errors = await _line_errors(session, body, by_code)
        raise InvalidOrder(errors or [_quote_error(exc)]) from None
    errors = _tax_errors(body, by_code)
    if errors:
        raise InvalidOrder(errors)
    taxes: list[tuple[str | None, Decimal]] = [
        (line.tax_code, by_code[line.tax_code])
        if line.tax_code is not None
        else (default if default is not None else (None, Decimal(0)))
        for line in body.lines
    ]
    # Prices come in the customer's currency: a different one means the order's is wrong.
    priced_in = {quote.currency for quote in quotes}
    if priced_in != {body.currency}:
        errors.append(
            _e(
                "currency",
                f"The customer buys in {', '.join(sorted(priced_in))}, not {body.currency}.",
                "currency_mismatch",
            )
        )
    priced = [_PricedLine(i + 1, quote, taxes[i][0], taxes[i][1]) for i, quote in enumerate(quotes)]
    if errors:
        raise InvalidOrder(errors)
    try:
        amounts = price_order(
            [
                (line.quantity, p.quote.unit_price_minor, p.tax_rate)
                for line, p in zip(body.lines, priced, strict=True)
            ]
        )
    except AmountOverflow as exc:
        raise InvalidOrder([_e(exc.field, str(exc), "amount_overflow")]) from None

    # Over the buyer's spending limit → the order waits for an approver of the company.
    limit: int | None = None
    buyer_user_id = principal.user_id if principal.is_buyer else None
    if buyer_user_id is not None:
        buyer = await customers.get_buyer(session, buyer_user_id)
        limit = buyer.spending_limit_minor if buyer is not None else None
    needs_approval = limit is not None and amounts.total_minor > limit

    order_id = uuid7()
    status = S.PENDING_APPROVAL if needs_approval else S.PLACED
    values: dict[str, Any] = {
        "id": order_id,
        "tenant_id": principal.tenant_id,
        "customer_id": body.customer_id,
        "currency": body.currency,
        "status": status.value,
        "version": 1,
        "subtotal_minor": amounts.subtotal_minor,
        "tax_minor": amounts.tax_minor,
        "total_minor": amounts.total_minor,
        "reference": body.reference,
        "notes": body.notes,
        "placed_by": caller_of(principal),
        "buyer_user_id": buyer_user_id,
        "spending_limit_minor": limit,
        "created_at": now,
        "updated_at": now,
    }
    lines: list[dict[str, Any]] = []
    for p, a in zip(priced, amounts.lines, strict=True):
        q = p.quote
        lines.append(
            {
                "id": uuid7(),
                "tenant_id": principal.tenant_id,
                "order_id": order_id,
                "line_no": p.line_no,
                "sku": q.sku,
                "sku_id": q.sku_id,
                "product_id": q.product_id,
                "name": q.name,
                "unit": q.unit,
                "quantity": a.quantity,
                "unit_price_minor": a.unit_price_minor,
                "tax_code": p.tax_code,
                "tax_rate": p.tax_rate,
                "net_minor": a.net_minor,
                "tax_minor": a.tax_minor,
                "total_minor": a.total_minor,
                "price_rule": _rule_dict(q.rule),
            }
        )
    await repo.insert_order(values, lines)

    base = {
        "order_id": order_id,
        "customer_id": body.customer_id,
        "currency": body.currency,
        "total_minor": amounts.total_minor,
        "version": 1,
    }
    # The outbox row on the driver connection too: one more plain statement, same transaction.
    await publish_on_driver(
        await driver_connection(session),
        ev.OrderCreated(
            **base,
            status=S.PLACED.value,
            subtotal_minor=amounts.subtotal_minor,
            tax_minor=amounts.tax_minor,
            placed_by=values["placed_by"],
            buyer_user_id=buyer_user_id,
            lines=[
                ev.OrderLineFact(
                    line_no=line["line_no"],
                    sku=line["sku"],
                    quantity=line["quantity"],
                    unit_price_minor=line["unit_price_minor"],
                    tax_minor=line["tax_minor"],
                    total_minor=line["total_minor"],
                )
                for line in lines
            ],
        ),
        tenant_id=principal.tenant_id,
        aggregate_id=order_id,
        occurred_at=now,
    )
    approver = False
    if needs_approval:
        approvers = await customers.list_approvers(session, body.customer_id)
        approver = principal.kind == "user" and principal.user_id in approvers
        await publish(
            session,
            ev.OrderApprovalRequested(
                **base,
                status=S.PENDING_APPROVAL.value,
                previous_status=S.PLACED.value,
                buyer_user_id=buyer_user_id,
                spending_limit_minor=limit,
                approver_user_ids=list(approvers),
            ),
            tenant_id=principal.tenant_id,
            aggregate_id=order_id,
            occurred_at=now,
        )
    out_values = {k: v for k, v in values.items() if k != "tenant_id"}
    return OrderOut(
        **out_values,
        decided_by=None,
        decided_at=None,
        decision_reason=None,
        confirmed_at=None,
        paid_at=None,
        fulfilled_at=None,
        cancelled_at=None,
        cancel_reason=None,
        actions=actions_for(principal, status, approver=approver),
        lines=[OrderLineOut(**{k: v for k, v in line.items() if k in _LINE_OUT}) for line in lines],
    )


_LINE_OUT = frozenset(OrderLineOut.model_fields)


def _quote_error(exc: ProblemError) -> dict[str, Any]:
    """The catalog's refusal as an order error naming the field (it names the line, 0-based)."""
    field = exc.extra.get("field")
    index = exc.extra.get("line")
    if field == "customer_id" or (isinstance(exc, NotFound) and index is None):
        return _e("customer_id", exc.detail, "customer")
    where = "quantity" if field == "quantity" else "sku"
    return _e(
        f"lines.{index}.{where}" if isinstance(index, int) else "lines", exc.detail, "unpriced"
    )


async def _line_errors(
    session: Any, body: OrderCreate, by_code: dict[str, Decimal]
) -> list[dict[str, Any]]:
    """Every unknown or inactive SKU and unknown tax code, line by line."""
    skus = await catalog.resolve_skus(session, sorted({line.sku for line in body.lines}))
    errors: list[dict[str, Any]] = []
    for i, line in enumerate(body.lines):
        sku = skus.get(line.sku)
        if sku is None:
            errors.append(_e(f"lines.{i}.sku", f"Unknown SKU {line.sku!r}.", "unknown_sku"))
        elif not sku.active:
            errors.append(_e(f"lines.{i}.sku", f"SKU {line.sku!r} is not active.", "inactive_sku"))
        if line.tax_code is not None and line.tax_code not in by_code:
            errors.append(
                _e(f"lines.{i}.tax_code", f"No active tax rate {line.tax_code!r}.", "tax_code")
            )
    return errors


def _tax_errors(body: OrderCreate, by_code: dict[str, Decimal]) -> list[dict[str, Any]]:
    return [
        _e(f"lines.{i}.tax_code", f"No active tax rate {line.tax_code!r}.", "tax_code")
        for i, line in enumerate(body.lines)
        if line.tax_code is not None and line.tax_code not in by_code
    ]


def _e(field: str, message: str, code: str) -> dict[str, Any]:
    return {"field": field, "message": message, "type": code}


# -- reading -----------------------------------------------------------------------------------


def actions_for(principal: Principal, status: OrderStatus, *, approver: bool) -> list[str]:
    """What *this caller* may do to an order in `status` now (the order's `actions`): the
    state's possible moves less those its scopes or role forbid — approve/reject only for an
    approver of the ordering company (`approver`), confirm/fulfil only for the seller's
    staff, cancel for a buyer only until the seller confirms."""
    if "orders:write" not in principal.scopes:
        return []
    out: list[str] = []
    for action in allowed_actions(status):
        if action in ("approve", "reject"):
            if not approver:
                continue
        elif action in ("confirm", "fulfil"):
            if principal.is_buyer:
                continue
        elif action == "cancel" and principal.is_buyer and status not in _BUYER_CANCELLABLE:
            continue
        out.append(action)
    return out


async def _is_approver(session: Any, principal: Principal, order: Order) -> bool:
    """Whether the caller may approve or reject `order` (the check `transition` makes)."""
    if principal.kind != "user" or principal.customer_id != order.customer_id:
        return False  # approvers are users of the ordering company
    return principal.user_id in await customers.list_approvers(session, order.customer_id)


async def order_out(
    repo: OrdersRepository, principal: Principal, order: Order, *, lines: bool = True
) -> OrderOut:
    status = S(order.status)
    invoice = await repo.invoice_for_order(order.id) if order.status not in _NO_INVOICE else None
    out = OrderOut.model_validate(order)
    approver = (
        "approve" in allowed_actions(status)
        and "orders:write" in principal.scopes
        and await _is_approver(repo.session, principal, order)
    )
    out.actions = actions_for(principal, status, approver=approver)
    out.invoice_id = invoice.id if invoice is not None else None
    if lines:
        out.lines = [OrderLineOut.model_validate(line) for line in await repo.order_lines(order.id)]
    return out


_NO_INVOICE = frozenset({"placed", "pending_approval", "approved", "rejected"})


async def get_order(session: Any, principal: Principal, order_id: uuid.UUID) -> OrderOut:
    repo = OrdersRepository(session, principal.tenant_id)
    order = await repo.order(order_id)
    if order is None or not _visible(principal, order):
        raise OrderNotFound(f"No order {order_id}.")
    return await order_out(repo, principal, order)


def expected_version(if_match: str | None) -> int | None:
    """The version `If-Match` names; None for `*` (any). 428 when absent, 412 when unreadable."""
    if if_match is None or not if_match.strip():
        raise IfMatchRequired(
            "Send If-Match with the ETag from your last read of the order, so that a "
            "concurrent change is not overwritten."
        )
    value = if_match.strip()
    if value == "*":
        return None
    for tag in (t.strip() for t in value.split(",")):
        if tag.startswith('"') and tag.endswith('"') and tag[1:-1].isdigit():
            return int(tag[1:-1])
    raise StaleVersion(f"If-Match {value!r} names no version of this order.")


async def _locked(
    repo: OrdersRepository, principal: Principal, order_id: uuid.UUID, if_match: str | None
) -> Order:
    """The order, locked; 404 before anything else so no other tenant learns it exists."""
    order = await repo.order(order_id, for_update=True)
    if order is None or not _visible(principal, order):
        raise OrderNotFound(f"No order {order_id}.")
    expected = expected_version(if_match)
    if expected is not None and order.version != expected:
        raise StaleVersion(
            f"The order is at version {order.version}, not {expected}; "
            "read it again and retry with its current ETag.",
            current_version=order.version,
            headers={"ETag": etag(order.version)},
        )
    return order


def etag(version: int) -> str:
    return f'"{version}"'


# -- changing ----------------------------------------------------------------------------------


async def apply_patch(
    session: Any,
    principal: Principal,
    order_id: uuid.UUID,
    if_match: str | None,
    body: OrderPatch,
) -> OrderOut:
    repo = OrdersRepository(session, principal.tenant_id)
    order = await _locked(repo, principal, order_id, if_match)
    changes = body.model_dump(exclude_unset=True)
    if changes:
        await repo.update_order(order, changes)
        await publish(
            session,
            ev.OrderUpdated(**_fact(order, order.status), changed=sorted(changes)),
            tenant_id=principal.tenant_id,
            aggregate_id=order.id,
        )
    return await order_out(repo, principal, order)


ACTIONS: dict[str, OrderStatus] = {
    "approve": S.APPROVED,
    "reject": S.REJECTED,
    "confirm": S.CONFIRMED,
    "cancel": S.CANCELLED,
    "fulfil": S.FULFILLED,
}

# Buyers may cancel their own order only until the seller confirmed it.
_BUYER_CANCELLABLE = frozenset({S.PLACED, S.PENDING_APPROVAL, S.APPROVED})


async def transition(
    session: Any,
    principal: Principal,
    order_id: uuid.UUID,
    action: str,
    *,
    if_match: str | None,
    reason: str | None = None,
) -> OrderOut:
    """Run one client action (approve, reject, confirm, cancel, fulfil) on a locked order."""
    target = ACTIONS[action]
    repo = OrdersRepository(session, principal.tenant_id)
    session.info.setdefault("tenant_id", principal.tenant_id)  # as in place_order
    order = await _locked(repo, principal, order_id, if_match)
    current = S(order.status)
    if not can_transition(current, target):
        allowed = allowed_actions(current)
        raise IllegalTransition(
            f"The order is {current.value}; it cannot be {action}ed from there"
            + (f" (possible now: {', '.join(allowed)})." if allowed else " (no action possible)."),
            current_status=current.value,
            action=action,
            allowed_actions=allowed,
        )
    now = utcnow()
    tenant_id = principal.tenant_id
    fact = _fact(order, current.value)

    if target in (S.APPROVED, S.REJECTED):
        approvers = await customers.list_approvers(session, order.customer_id)
        if principal.kind != "user" or principal.user_id not in approvers:
            raise ApproverRequired(
                "Only an approver of the ordering company may approve or reject its orders."
            )
        await repo.update_order(
            order,
            {
                "status": target.value,
                "decided_by": caller_of(principal),
                "decided_at": now,
                "decision_reason": reason,
            },
        )
        fact.update(status=target.value, version=order.version)
        event: ev.OrderEvent = (
            ev.OrderApproved(**fact, decided_by=caller_of(principal))
            if target is S.APPROVED
            else ev.OrderRejected(**fact, decided_by=caller_of(principal), reason=reason)
        )
        await publish(session, event, tenant_id=tenant_id, aggregate_id=order.id)

    elif target is S.CONFIRMED:
        _staff_only(principal, action)
        await issue_invoice(session, repo, order, confirmed_at=now)

    elif target is S.FULFILLED:
        _staff_only(principal, action)
        await repo.update_order(order, {"status": target.value, "fulfilled_at": now})
        fact.update(status=target.value, version=order.version)
        await publish(
            session, ev.OrderFulfilled(**fact), tenant_id=tenant_id, aggregate_id=order.id
        )

    elif target is S.CANCELLED:
        if principal.is_buyer and current not in _BUYER_CANCELLABLE:
            raise Forbidden(
                "A buyer can cancel an order only until the seller confirms it; "
                "ask the seller to cancel it now."
            )
        invoice_id = await cancel_invoice(session, repo, order, reason=reason)
        await repo.update_order(
            order, {"status": target.value, "cancelled_at": now, "cancel_reason": reason}
        )
        fact.update(status=target.value, version=order.version)
        await publish(
            session,
            ev.OrderCancelled(**fact, reason=reason, invoice_id=invoice_id),
            tenant_id=tenant_id,
            aggregate_id=order.id,
        )
    return await order_out(repo, principal, order)


def _staff_only(principal: Principal, action: str) -> None:
    if principal.is_buyer:
        raise Forbidden(f"Only the seller's staff can {action} an order.")


async def order_line_rows(
    session: Any, tenant_id: uuid.UUID, order_id: uuid.UUID
) -> list[OrderLine]:
    return await OrdersRepository(session, tenant_id).order_lines(order_id)
