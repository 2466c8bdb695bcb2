"""What the catalog does on events, in the worker: thumbnails and removing deleted images' files.

Each handler runs once per event in its own transaction (the events
context's consumption record); both are idempotent anyway — a thumbnail job
for an image that is no longer pending, or a file that is already gone, is a
no-op.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from tradeflow.catalog import cache, events, images
from tradeflow.catalog.repository import CatalogRepository
from tradeflow.catalog.runtime import config
from tradeflow.events import HandlerContext, publish, subscriber
from tradeflow.kit.time import utcnow

log = structlog.get_logger(__name__)


@subscriber("product_image.uploaded", name="catalog.make_thumbnails")
async def make_thumbnails(ctx: HandlerContext) -> None:
    payload = events.ProductImageUploaded.model_validate(ctx.event.payload)
    repo = CatalogRepository(ctx.session, ctx.tenant_id)
    image = await repo.image(payload.image_id, for_update=True)
    if image is None or image.status != "pending":
        return  # deleted meanwhile, or already done
    cfg = config()
    try:
        # Decoding and resizing are CPU work: keep the worker's event loop free.
        thumbs = await asyncio.to_thread(
            images.make_thumbnails,
            cfg.media_root,
            image.storage_key,
            max_pixels=cfg.max_image_pixels,
        )
    except (images.CorruptImage, images.ImageDimensionsTooLarge, FileNotFoundError) as exc:
        # Permanent: retrying cannot help, so the failure is recorded, not raised.
        image.status = "failed"
        image.error = getattr(exc, "detail", None) or str(exc)
        log.warning("thumbnail_failed", image_id=str(image.id), error=image.error)
    else:
        image.status = "ready"
        image.error = None
        image.thumbnails = {
            str(t.size): {"key": t.key, "width": t.width, "height": t.height} for t in thumbs
        }
    image.updated_at = utcnow()
    await ctx.session.flush()
    await publish(
        ctx.session,
        events.ProductImageProcessed(
            image_id=image.id,
            product_id=image.product_id,
            status="ready" if image.status == "ready" else "failed",
            error=image.error,
        ),
        tenant_id=ctx.tenant_id,
        aggregate_id=image.product_id,
    )


@subscriber("product_image.deleted", name="catalog.remove_image_files")
async def remove_image_files(ctx: HandlerContext) -> None:
    payload = events.ProductImageDeleted.model_validate(ctx.event.payload)
    root = config().media_root
    prefix = f"{ctx.tenant_id}/products/{payload.product_id}/"
    for key in payload.storage_keys:
        if not key.startswith(prefix):  # only ever this tenant's, this product's files
            log.warning("image_key_outside_product", key=key, image_id=str(payload.image_id))
            continue
        with contextlib.suppress(FileNotFoundError):
            images.resolve(root, key).unlink()


@subscriber("price_list.changed", "contract_price.changed", name="catalog.evict_stale_prices")
async def evict_stale_prices(ctx: HandlerContext) -> None:
    """Housekeeping: drop cache entries of pricing versions before this change's.

    Quotes never read them (the version is in the key); this frees Redis now
    instead of at their TTL. Idempotent: a re-run finds nothing older.
    """
    version = ctx.event.payload.get("pricing_version")
    if isinstance(version, int):
        await cache.evict_older(ctx.tenant_id, version)
