"""Demo data for customers: a customer group, a customer company, a buyer and an approver.

Called by the catalog's demo seeder (`tradeflow.catalog.demo.seed`), which
needs the group and the customer for its price lists and contract price.
Re-running is harmless: what exists is found by name or e-mail and kept.
"""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.customers import service
from tradeflow.customers.repository import CustomersRepository
from tradeflow.customers.schemas import BuyerIn, CustomerGroupIn, CustomerIn
from tradeflow.kit.pagination import PageRequest

GROUP_NAME = "Trade customers"
CUSTOMER_NAME = "Demo Buyer GmbH"
BUYER_EMAIL = "buyer@demo-buyer.example.com"
APPROVER_EMAIL = "approver@demo-buyer.example.com"
SPENDING_LIMIT_MINOR = 50_000  # 500.00 EUR: a bigger order waits for the approver


def _password() -> str:
    return "demo-" + secrets.token_urlsafe(15)


async def seed_demo_customers(
    session: AsyncSession, tenant_id: uuid.UUID, *, old: dict[str, Any]
) -> dict[str, Any]:
    repo = CustomersRepository(session, tenant_id)
    group = await repo.group_by_name(GROUP_NAME)
    if group is None:
        group = await service.create_group(
            session,
            tenant_id,
            CustomerGroupIn(
                name=GROUP_NAME,
                description="Resellers: the Trade price list and 5 % off base prices.",
                discount_percent=Decimal(5),
            ),
        )
    found, _ = await repo.list_customers(PageRequest(limit=1), name=CUSTOMER_NAME)
    if found:
        customer = found[0]
    else:
        customer = await service.create_customer(
            session,
            tenant_id,
            CustomerIn.model_validate(
                {
                    "name": CUSTOMER_NAME,
                    "tax_id": "DE999999999",
                    "billing_address": {
                        "line1": "Musterstraße 1",
                        "city": "Berlin",
                        "postal_code": "10115",
                        "country": "DE",
                    },
                    "currency": "EUR",
                    "payment_terms_days": 30,
                    "credit_limit_minor": 5_000_000,
                    "group_id": str(group.id),
                }
            ),
        )
    out: dict[str, Any] = {
        "customer_id": str(customer.id),
        "currency": customer.currency,
        "customer_group_id": str(group.id),
    }
    buyers, _ = await repo.list_buyers(customer.id, PageRequest(limit=100))
    by_email = {b.email: b for b in buyers}
    for key, email, role, limit in (
        ("buyer", BUYER_EMAIL, "buyer", SPENDING_LIMIT_MINOR),
        ("approver", APPROVER_EMAIL, "approver", None),
    ):
        kept = old.get(f"{key}_password")
        if email in by_email and isinstance(kept, str):
            password = kept  # the demo's own account: its password is the one written down
        else:
            password = _password()
            if email not in by_email:
                await service.create_buyer(
                    session,
                    tenant_id,
                    customer.id,
                    BuyerIn.model_validate(
                        {
                            "email": email,
                            "password": password,
                            "role": role,
                            "spending_limit_minor": limit,
                        }
                    ),
                    actor=None,
                )
        out[f"{key}_email"], out[f"{key}_password"] = email, password
    return out
