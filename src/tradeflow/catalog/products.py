"""Use cases behind `/v1/products`, `/v1/skus` and `/v1/products/{id}/images`.

Nothing here commits. Changes that can alter a price (a new SKU code, an
active flag) bump the tenant's pricing version in the same transaction.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.catalog import events, images
from tradeflow.catalog.models import Product, ProductImage, Sku
from tradeflow.catalog.repository import CatalogRepository
from tradeflow.catalog.runtime import config
from tradeflow.catalog.schemas import ProductIn, ProductPatch, SkuIn, SkuPatch
from tradeflow.errors import Conflict, NotFound
from tradeflow.events import publish
from tradeflow.kit.etag import check_if_match
from tradeflow.kit.ids import uuid7
from tradeflow.kit.pagination import PageRequest
from tradeflow.kit.time import utcnow


class ProductNotFound(NotFound):
    slug, title = "product-not-found", "Product not found"


class SkuNotFound(NotFound):
    slug, title = "sku-not-found", "SKU not found"


class ImageNotFound(NotFound):
    slug, title = "image-not-found", "Image not found"


class SkuCodeTaken(Conflict):
    slug, title = "sku-code-taken", "SKU code taken"


async def _product(
    repo: CatalogRepository, product_id: uuid.UUID, *, lock: bool = False
) -> Product:
    product = await repo.product(product_id, for_update=lock)
    if product is None:
        raise ProductNotFound(f"No product {product_id}.")
    return product


async def _add_skus(
    repo: CatalogRepository, product: Product, bodies: list[SkuIn], *, field_prefix: str
) -> list[Sku]:
    taken = {s.code for s, _ in await repo.skus_with_products([b.code for b in bodies])}
    for index, body in enumerate(bodies):
        if body.code in taken:
            raise SkuCodeTaken(
                f"SKU code {body.code!r} is already used.",
                field=field_prefix.format(index=index),
            )
    skus = [
        Sku(
            product_id=product.id,
            code=b.code,
            name=b.name,
            unit=b.unit,
            active=b.active,
            attributes=b.attributes,
        )
        for b in bodies
    ]
    try:
        async with repo.session.begin_nested():
            await repo.add(*skus)
    except IntegrityError as exc:  # the same code created concurrently
        raise SkuCodeTaken("One of the SKU codes was taken meanwhile.", field="code") from exc
    for sku in skus:
        await publish(
            repo.session,
            events.SkuCreated(
                sku_id=sku.id,
                product_id=product.id,
                code=sku.code,
                name=sku.name,
                unit=sku.unit,
                active=sku.active,
            ),
            tenant_id=repo.tenant_id,
            aggregate_id=product.id,
        )
    if skus:
        await repo.bump_pricing_version()
    return skus


async def create_product(
    session: AsyncSession, tenant_id: uuid.UUID, body: ProductIn
) -> tuple[Product, list[Sku]]:
    repo = CatalogRepository(session, tenant_id)
    product = Product(
        name=body.name,
        description=body.description,
        active=body.active,
        attributes=body.attributes,
    )
    await repo.add(product)
    await publish(
        session,
        events.ProductCreated(
            product_id=product.id,
            name=product.name,
            active=product.active,
            sku_codes=[s.code for s in body.skus],
        ),
        tenant_id=tenant_id,
        aggregate_id=product.id,
    )
    skus = await _add_skus(repo, product, body.skus, field_prefix="skus.{index}.code")
    return product, skus


async def ensure_product(
    session: AsyncSession, tenant_id: uuid.UUID, product_id: uuid.UUID
) -> None:
    """`ProductNotFound` (404) unless the product exists in this tenant."""
    await _product(CatalogRepository(session, tenant_id), product_id)


async def get_product(
    session: AsyncSession, tenant_id: uuid.UUID, product_id: uuid.UUID
) -> tuple[Product, list[Sku]]:
    repo = CatalogRepository(session, tenant_id)
    product = await _product(repo, product_id)
    return product, await repo.skus_of([product.id])


async def list_products(
    session: AsyncSession, tenant_id: uuid.UUID, page: PageRequest, **filters: Any
) -> tuple[list[tuple[Product, list[Sku]]], str | None]:
    repo = CatalogRepository(session, tenant_id)
    rows, cursor = await repo.list_products(page, **filters)
    by_product: dict[uuid.UUID, list[Sku]] = {p.id: [] for p in rows}
    for sku in await repo.skus_of(list(by_product)):
        by_product[sku.product_id].append(sku)
    return [(p, by_product[p.id]) for p in rows], cursor


def _apply(row: Any, changes: dict[str, Any]) -> list[str]:
    changed = sorted(k for k, v in changes.items() if v is not None and getattr(row, k) != v)
    for name in changed:
        setattr(row, name, changes[name])
    return changed


async def update_product(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    product_id: uuid.UUID,
    patch: ProductPatch,
    *,
    if_match: str | None = None,
) -> tuple[Product, list[Sku]]:
    repo = CatalogRepository(session, tenant_id)
    product = await _product(repo, product_id, lock=True)
    check_if_match(if_match, product.version)
    changed = _apply(product, patch.model_dump(exclude_unset=True))
    if changed:
        product.version += 1
        product.updated_at = utcnow()
        await session.flush()
        await publish(
            session,
            events.ProductUpdated(product_id=product.id, changed=changed, active=product.active),
            tenant_id=tenant_id,
            aggregate_id=product.id,
        )
        if "active" in changed:  # a product's flag is part of every one of its SKUs' prices
            await repo.bump_pricing_version()
    return product, await repo.skus_of([product.id])


# -- SKUs --------------------------------------------------------------------------------------
async def add_sku(
    session: AsyncSession, tenant_id: uuid.UUID, product_id: uuid.UUID, body: SkuIn
) -> Sku:
    repo = CatalogRepository(session, tenant_id)
    product = await _product(repo, product_id, lock=True)
    (sku,) = await _add_skus(repo, product, [body], field_prefix="code")
    return sku


async def get_sku(session: AsyncSession, tenant_id: uuid.UUID, sku_id: uuid.UUID) -> Sku:
    sku = await CatalogRepository(session, tenant_id).sku(sku_id)
    if sku is None:
        raise SkuNotFound(f"No SKU {sku_id}.")
    return sku


async def update_sku(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    sku_id: uuid.UUID,
    patch: SkuPatch,
    *,
    if_match: str | None = None,
) -> Sku:
    repo = CatalogRepository(session, tenant_id)
    sku = await repo.sku(sku_id, for_update=True)
    if sku is None:
        raise SkuNotFound(f"No SKU {sku_id}.")
    check_if_match(if_match, sku.version)
    changed = _apply(sku, patch.model_dump(exclude_unset=True))
    if changed:
        sku.version += 1
        sku.updated_at = utcnow()
        await session.flush()
        await publish(
            session,
            events.SkuUpdated(
                sku_id=sku.id,
                product_id=sku.product_id,
                code=sku.code,
                changed=changed,
                active=sku.active,
            ),
            tenant_id=tenant_id,
            aggregate_id=sku.product_id,
        )
        await repo.bump_pricing_version()  # name, unit and active all show in quotes
    return sku


async def list_skus(
    session: AsyncSession, tenant_id: uuid.UUID, page: PageRequest, **filters: Any
) -> tuple[list[Sku], str | None]:
    return await CatalogRepository(session, tenant_id).list_skus(page, **filters)


# -- images ------------------------------------------------------------------------------------
async def upload_image(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    product_id: uuid.UUID,
    *,
    filename: str,
    data: bytes,
    alt_text: str = "",
) -> ProductImage:
    """Check and store an image; its thumbnails follow from `product_image.uploaded`."""
    repo = CatalogRepository(session, tenant_id)
    product = await _product(repo, product_id)
    cfg = config()
    checked = images.check_image(
        data, max_bytes=cfg.max_image_bytes, max_pixels=cfg.max_image_pixels
    )
    image = ProductImage(
        id=uuid7(),
        product_id=product.id,
        filename=filename,
        content_type=checked.content_type,
        format=checked.format,
        width=checked.width,
        height=checked.height,
        size_bytes=checked.size_bytes,
        sha256=checked.sha256,
        alt_text=alt_text,
        status="pending",
        thumbnails={},
    )
    image.storage_key = images.storage_key(tenant_id, product.id, image.id, checked.extension)
    path = images.resolve(cfg.media_root, image.storage_key)
    # The file goes first: a row never points at a missing file. If the transaction
    # then fails, the orphan file is removed here (or, after a crash, stays unreferenced).
    images.write_atomically(path, data)
    try:
        await repo.add(image)
        await publish(
            session,
            events.ProductImageUploaded(
                image_id=image.id,
                product_id=product.id,
                content_type=image.content_type,
                width=image.width,
                height=image.height,
                size_bytes=image.size_bytes,
            ),
            tenant_id=tenant_id,
            aggregate_id=product.id,
        )
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return image


async def get_image(
    session: AsyncSession, tenant_id: uuid.UUID, product_id: uuid.UUID, image_id: uuid.UUID
) -> ProductImage:
    image = await CatalogRepository(session, tenant_id).image(image_id, product_id=product_id)
    if image is None:
        raise ImageNotFound(f"No image {image_id} of product {product_id}.")
    return image


async def list_images(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    product_id: uuid.UUID,
    page: PageRequest,
    *,
    status: str | None = None,
) -> tuple[list[ProductImage], str | None]:
    repo = CatalogRepository(session, tenant_id)
    await _product(repo, product_id)
    return await repo.list_images(product_id, page, status=status)


async def delete_image(
    session: AsyncSession, tenant_id: uuid.UUID, product_id: uuid.UUID, image_id: uuid.UUID
) -> None:
    """Delete the row now; the files go when the worker handles `product_image.deleted`."""
    repo = CatalogRepository(session, tenant_id)
    image = await repo.image(image_id, product_id=product_id, for_update=True)
    if image is None:
        raise ImageNotFound(f"No image {image_id} of product {product_id}.")
    keys = [image.storage_key, *(t["key"] for t in image.thumbnails.values())]
    await repo.delete(image)
    await publish(
        session,
        events.ProductImageDeleted(image_id=image_id, product_id=product_id, storage_keys=keys),
        tenant_id=tenant_id,
        aggregate_id=product_id,
    )
