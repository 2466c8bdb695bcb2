"""Tenant B's products, SKUs, images, price lists and contract prices for the
tenant-isolation walk (tests/test_tenant_isolation.py)."""

from __future__ import annotations

import io
import uuid
from typing import Any

from httpx import AsyncClient
from PIL import Image

from tradeflow.catalog import prices, products, service
from tradeflow.catalog.schemas import ContractPriceIn, PriceListIn, ProductIn
from tradeflow.customers import service as customers
from tradeflow.customers.schemas import CustomerIn


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


async def _world(ctx: Any) -> dict[str, str]:
    known = ctx.recalled("catalog_b")
    if known is not None:
        return dict(known)
    tenant = ctx.tenant_b.id
    code = f"B-{uuid.uuid4().hex[:8]}"
    async with ctx.db.tenant_session(tenant) as s:
        product, (sku,) = await products.create_product(
            s,
            tenant,
            ProductIn.model_validate(
                {"name": "B's product", "skus": [{"code": code, "name": "b"}]}
            ),
        )
        image = await products.upload_image(s, tenant, product.id, filename="b.png", data=_png())
        price_list = await prices.create_price_list(
            s,
            tenant,
            PriceListIn.model_validate(
                {
                    "name": "B base",
                    "currency": "EUR",
                    "entries": [{"sku": code, "unit_price_minor": 100}],
                }
            ),
        )
        ((entry, _),), _ = await prices.list_entries(s, tenant, price_list.id, _page())
        customer = await customers.create_customer(
            s, tenant, CustomerIn(name="B's buyer co", currency="EUR")
        )
        contract, _ = await prices.create_contract_price(
            s,
            tenant,
            ContractPriceIn(customer_id=customer.id, sku=code, unit_price_minor=90),
        )
        await s.commit()
    values = {
        "product_id": str(product.id),
        "sku_id": str(sku.id),
        "image_id": str(image.id),
        "price_list_id": str(price_list.id),
        "entry_id": str(entry.id),
        "contract_price_id": str(contract.id),
        "customer_id": str(customer.id),
        "code": code,
    }
    ctx.remember("catalog_b", values)
    return values


def _page() -> Any:
    from tradeflow.kit.pagination import PageRequest

    return PageRequest(limit=10)


def _only(*names: str) -> Any:
    async def factory(ctx: Any) -> dict[str, str]:
        world = await _world(ctx)
        return {n: world[n] for n in names}

    return factory


FACTORIES = {
    "product_id": _only("product_id"),
    "sku_id": _only("sku_id"),
    "image_id": _only("product_id", "image_id"),
    "price_list_id": _only("price_list_id"),
    "entry_id": _only("price_list_id", "entry_id"),
    "contract_price_id": _only("contract_price_id"),
}


async def check_untouched(ctx: Any, client: AsyncClient) -> None:
    """After the walk: B's catalog still prices exactly as before, image and all."""
    world = ctx.recalled("catalog_b")
    if not world:
        return
    tenant = ctx.tenant_b.id
    async with ctx.db.tenant_session(tenant) as s:
        q = await service.quote(
            s, customer_id=uuid.UUID(world["customer_id"]), sku=world["code"], quantity=1
        )
        image = await products.get_image(
            s, tenant, uuid.UUID(world["product_id"]), uuid.UUID(world["image_id"])
        )
        product, _ = await products.get_product(s, tenant, uuid.UUID(world["product_id"]))
    assert (q.unit_price_minor, q.rule.kind) == (90, "contract"), "A changed B's prices"
    assert image.status == "pending"
    assert product.name == "B's product"
    assert product.active
