"""`/v1/products`, `/v1/skus` and `/v1/products/{id}/images`.

SKUs are created under their product (`POST /v1/products/{id}/skus`, or
inline in `POST /v1/products`) and addressed flat at `/v1/skus/{id}`: a SKU
code is unique per seller, orders name SKUs by code alone, and
`GET /v1/skus?code=` finds one without knowing its product.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import PurePath
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.types import Message

from tradeflow.catalog import images, products
from tradeflow.catalog.models import Product, ProductImage, Sku
from tradeflow.catalog.runtime import config, configure
from tradeflow.catalog.schemas import (
    ImageOut,
    ProductIn,
    ProductOut,
    ProductPatch,
    SkuCode,
    SkuIn,
    SkuOut,
    SkuPatch,
    ThumbnailOut,
)
from tradeflow.config import Settings
from tradeflow.identity.auth import TenantSession, require_scopes
from tradeflow.identity.principal import Principal
from tradeflow.kit.etag import IfMatch, etag
from tradeflow.kit.idempotency import claim
from tradeflow.kit.openapi import problems
from tradeflow.kit.pagination import Page, PageParams
from tradeflow.kit.text import clean_line

router = APIRouter()

Read = Annotated[Principal, require_scopes("catalog:read")]
Write = Annotated[Principal, require_scopes("catalog:write")]
NameFilter = Annotated[
    str | None, Query(max_length=200, description="Case-insensitive substring of the name.")
]


def router_for(settings: Settings) -> APIRouter:
    """The catalog's routes, with the process's media folder and price cache configured."""
    from tradeflow.catalog.price_endpoints import router as price_router
    from tradeflow.catalog.quote_endpoints import router as quote_router

    configure(settings)
    combined = APIRouter()
    combined.include_router(router)
    combined.include_router(price_router)
    combined.include_router(quote_router)
    return combined


def _caller(principal: Principal) -> str:
    return f"{principal.kind}:{principal.id}"


def _sku_out(sku: Sku) -> SkuOut:
    return SkuOut.model_validate(sku)


def _product_out(product: Product, skus: list[Sku]) -> ProductOut:
    return ProductOut(
        id=product.id,
        name=product.name,
        description=product.description,
        active=product.active,
        attributes=product.attributes,
        skus=[_sku_out(s) for s in skus],
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


def _image_url(image: ProductImage) -> str:
    return f"/v1/products/{image.product_id}/images/{image.id}/content"


def _image_out(image: ProductImage) -> ImageOut:
    return ImageOut(
        id=image.id,
        product_id=image.product_id,
        filename=image.filename,
        content_type=image.content_type,
        width=image.width,
        height=image.height,
        size_bytes=image.size_bytes,
        sha256=image.sha256,
        alt_text=image.alt_text,
        status=image.status,
        error=image.error,
        url=_image_url(image),
        thumbnails=[
            ThumbnailOut(
                size=int(size),
                width=t["width"],
                height=t["height"],
                url=f"{_image_url(image)}?size={size}",
            )
            for size, t in sorted(image.thumbnails.items(), key=lambda kv: int(kv[0]))
        ],
        created_at=image.created_at,
        updated_at=image.updated_at,
    )


# -- products ----------------------------------------------------------------------------------
@router.get(
    "/products",
    response_model=Page[ProductOut],
    tags=["catalog"],
    responses=problems(400, 401, 403, 422, 429),
)
async def list_products(
    principal: Read,
    session: TenantSession,
    page: PageParams,
    active: bool | None = None,
    name: NameFilter = None,
) -> Page[ProductOut]:
    """Products with their SKUs, newest first, filtered by active flag or name.

    Buyers see active products only.
    """
    if principal.is_buyer:
        active = True
    rows, cursor = await products.list_products(
        session, principal.tenant_id, page, active=active, name=name
    )
    return Page(items=[_product_out(p, s) for p, s in rows], next_cursor=cursor)


@router.post(
    "/products",
    status_code=201,
    response_model=ProductOut,
    tags=["catalog"],
    responses=problems(400, 401, 403, 409, 422, 429),
)
async def create_product(
    body: ProductIn, request: Request, principal: Write, session: TenantSession
) -> JSONResponse:
    """Create a product, optionally with its SKUs. Emits `product.created` (and `sku.created`).

    Accepts `Idempotency-Key`. A SKU code already in use → 409 naming it.
    """
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    product, skus = await products.create_product(session, principal.tenant_id, body)
    return await idem.save(
        201,
        _product_out(product, skus).model_dump(mode="json"),
        location=f"/v1/products/{product.id}",
    )


@router.get(
    "/products/{product_id}",
    response_model=ProductOut,
    tags=["catalog"],
    responses=problems(401, 403, 404, 429),
)
async def get_product(
    product_id: uuid.UUID, principal: Read, session: TenantSession, response: Response
) -> ProductOut:
    """One product with its SKUs and its `ETag`."""
    product, skus = await products.get_product(session, principal.tenant_id, product_id)
    if principal.is_buyer and not product.active:
        raise products.ProductNotFound(f"No product {product_id}.")
    response.headers["ETag"] = etag(product.version)
    return _product_out(product, skus)


@router.patch(
    "/products/{product_id}",
    response_model=ProductOut,
    tags=["catalog"],
    responses=problems(401, 403, 404, 412, 422, 429),
)
async def update_product(
    product_id: uuid.UUID,
    body: ProductPatch,
    principal: Write,
    session: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> ProductOut:
    """Change a product's name, description, attributes or active flag.

    An inactive product's SKUs cannot be quoted or ordered.
    """
    product, skus = await products.update_product(
        session, principal.tenant_id, product_id, body, if_match=if_match
    )
    response.headers["ETag"] = etag(product.version)
    return _product_out(product, skus)


@router.post(
    "/products/{product_id}/skus",
    status_code=201,
    response_model=SkuOut,
    tags=["catalog"],
    responses=problems(400, 401, 403, 404, 409, 422, 429),
)
async def add_sku(
    product_id: uuid.UUID,
    body: SkuIn,
    request: Request,
    principal: Write,
    session: TenantSession,
) -> JSONResponse:
    """Add a SKU to a product. Emits `sku.created`. Accepts `Idempotency-Key`."""
    idem = await claim(
        request, session, tenant_id=principal.tenant_id, caller=_caller(principal), required=False
    )
    sku = await products.add_sku(session, principal.tenant_id, product_id, body)
    return await idem.save(
        201, _sku_out(sku).model_dump(mode="json"), location=f"/v1/skus/{sku.id}"
    )


# -- SKUs --------------------------------------------------------------------------------------
@router.get(
    "/skus",
    response_model=Page[SkuOut],
    tags=["catalog"],
    responses=problems(400, 401, 403, 422, 429),
)
async def list_skus(
    principal: Read,
    session: TenantSession,
    page: PageParams,
    product_id: uuid.UUID | None = None,
    code: Annotated[list[SkuCode] | None, Query(max_length=100)] = None,
    active: bool | None = None,
    name: NameFilter = None,
) -> Page[SkuOut]:
    """SKUs, newest first; filter by product, one or more `code`s, active flag or name."""
    if principal.is_buyer:
        active = True
    rows, cursor = await products.list_skus(
        session,
        principal.tenant_id,
        page,
        product_id=product_id,
        codes=code,
        active=active,
        name=name,
    )
    return Page(items=[_sku_out(s) for s in rows], next_cursor=cursor)


@router.get(
    "/skus/{sku_id}",
    response_model=SkuOut,
    tags=["catalog"],
    responses=problems(401, 403, 404, 429),
)
async def get_sku(
    sku_id: uuid.UUID, principal: Read, session: TenantSession, response: Response
) -> SkuOut:
    """One SKU, with its `ETag`."""
    sku = await products.get_sku(session, principal.tenant_id, sku_id)
    if principal.is_buyer and not sku.active:
        raise products.SkuNotFound(f"No SKU {sku_id}.")
    response.headers["ETag"] = etag(sku.version)
    return _sku_out(sku)


@router.patch(
    "/skus/{sku_id}",
    response_model=SkuOut,
    tags=["catalog"],
    responses=problems(401, 403, 404, 412, 422, 429),
)
async def update_sku(
    sku_id: uuid.UUID,
    body: SkuPatch,
    principal: Write,
    session: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> SkuOut:
    """Change a SKU's name, unit, attributes or active flag (its code is permanent)."""
    sku = await products.update_sku(session, principal.tenant_id, sku_id, body, if_match=if_match)
    response.headers["ETag"] = etag(sku.version)
    return _sku_out(sku)


# -- images ------------------------------------------------------------------------------------
@router.get(
    "/products/{product_id}/images",
    response_model=Page[ImageOut],
    tags=["catalog"],
    responses=problems(400, 401, 403, 404, 429),
)
async def list_images(
    product_id: uuid.UUID,
    principal: Read,
    session: TenantSession,
    page: PageParams,
    status: Literal["pending", "ready", "failed"] | None = None,
) -> Page[ImageOut]:
    """A product's images, oldest first, with their thumbnail status."""
    rows, cursor = await products.list_images(
        session, principal.tenant_id, product_id, page, status=status
    )
    return Page(items=[_image_out(i) for i in rows], next_cursor=cursor)


def _filename(upload: StarletteUploadFile) -> str:
    # Only for display: storage paths are built from ids, never from this.
    raw = PurePath((upload.filename or "image").replace("\\", "/")).name
    try:
        name = clean_line(raw)[:255]
    except ValueError:
        name = ""
    return name or "image"


_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "JPEG, PNG, WebP or GIF.",
                    },
                    "alt_text": {"type": "string", "maxLength": 300},
                },
            }
        }
    },
}


def _with_body(request: Request, body: bytes) -> Request:
    """The same request (method, path, headers) carrying `body` instead of its own."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


class UploadInvalid(images.UnsupportedImage):
    slug, title = "invalid-upload", "Invalid upload"


@router.post(
    "/products/{product_id}/images",
    status_code=201,
    response_model=ImageOut,
    tags=["catalog"],
    responses=problems(400, 401, 403, 404, 413, 422, 429),
    openapi_extra={"requestBody": _UPLOAD_BODY},
)
async def upload_image(
    product_id: uuid.UUID, request: Request, principal: Write, session: TenantSession
) -> JSONResponse:
    """Upload a product image (multipart field `file`); thumbnails follow asynchronously.

    The image is checked by content: not an accepted format or damaged → 422;
    over the size limit → 413; too many pixels (a decompression bomb) → 422.
    The new image is `pending` until the worker has made its thumbnails
    (`ready`), or `failed` with an `error`. Accepts `Idempotency-Key`.
    """
    await products.ensure_product(session, principal.tenant_id, product_id)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UploadInvalid("Send multipart/form-data with the image in `file`.", field="file")
    try:
        form = await request.form(max_files=1, max_fields=5)
    except Exception as exc:  # malformed multipart, too many parts
        raise UploadInvalid(f"The multipart body could not be read: {exc}", field="file") from exc
    upload = form.get("file")
    if not isinstance(upload, StarletteUploadFile):
        raise UploadInvalid("The image goes in the multipart field `file`.", field="file")
    alt_raw = form.get("alt_text", "")
    try:
        alt = clean_line(alt_raw if isinstance(alt_raw, str) else "")[:300]
    except ValueError as exc:
        raise UploadInvalid(f"alt_text {exc}", field="alt_text") from exc
    data = await upload.read(config().max_image_bytes + 1)
    # A retry's multipart body differs in its boundary only, so the key's fingerprint is
    # taken over what was sent (file name, content hash, alt text), not the raw bytes.
    sent = {"filename": upload.filename, "sha256": hashlib.sha256(data).hexdigest(), "alt": alt}
    idem = await claim(
        _with_body(request, json.dumps(sent, sort_keys=True).encode()),
        session,
        tenant_id=principal.tenant_id,
        caller=_caller(principal),
        required=False,
    )
    image = await products.upload_image(
        session,
        principal.tenant_id,
        product_id,
        filename=_filename(upload),
        data=data,
        alt_text=alt,
    )
    return await idem.save(
        201,
        _image_out(image).model_dump(mode="json"),
        location=f"/v1/products/{product_id}/images/{image.id}",
    )


@router.get(
    "/products/{product_id}/images/{image_id}",
    response_model=ImageOut,
    tags=["catalog"],
    responses=problems(401, 403, 404, 429),
)
async def get_image(
    product_id: uuid.UUID, image_id: uuid.UUID, principal: Read, session: TenantSession
) -> ImageOut:
    """One image: its status (`pending`, `ready`, `failed`), error and thumbnails."""
    return _image_out(await products.get_image(session, principal.tenant_id, product_id, image_id))


@router.get(
    "/products/{product_id}/images/{image_id}/content",
    response_class=FileResponse,
    tags=["catalog"],
    responses={
        200: {"content": {"image/*": {}}, "description": "The image or thumbnail file."},
        **problems(401, 403, 404, 429),
    },
)
async def get_image_content(
    product_id: uuid.UUID,
    image_id: uuid.UUID,
    principal: Read,
    session: TenantSession,
    size: Annotated[
        int | None, Query(description="A thumbnail size from `thumbnails`; omit: original.")
    ] = None,
) -> FileResponse:
    """The stored image, or one of its thumbnails (`?size=128`)."""
    image = await products.get_image(session, principal.tenant_id, product_id, image_id)
    if size is None:
        key, media_type = image.storage_key, image.content_type
    else:
        thumb = image.thumbnails.get(str(size))
        if thumb is None:
            raise products.ImageNotFound(
                f"No {size}px thumbnail of image {image_id} (status {image.status})."
            )
        key, media_type = thumb["key"], images.THUMBNAIL_FORMAT[2]
    path = images.resolve(config().media_root, key)
    if not path.is_file():
        raise products.ImageNotFound(f"The file of image {image_id} is missing.")
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private"})


@router.delete(
    "/products/{product_id}/images/{image_id}",
    status_code=204,
    tags=["catalog"],
    responses=problems(401, 403, 404, 429),
)
async def delete_image(
    product_id: uuid.UUID, image_id: uuid.UUID, principal: Write, session: TenantSession
) -> Response:
    """Delete an image; its files are removed by the worker."""
    await products.delete_image(session, principal.tenant_id, product_id, image_id)
    return Response(status_code=204)
