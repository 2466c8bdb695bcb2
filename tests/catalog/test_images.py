"""Product images: validation on upload, thumbnails made by the worker's handler, end to end."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from PIL import Image

from catalog.support import create_product
from customers.support import Seller, events_of, make_seller, uniq
from events.support import FAST, eventually, running_worker
from tradeflow.app import create_app
from tradeflow.catalog import runtime
from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring


def png(size: tuple[int, int] = (800, 600), mode: str = "RGBA") -> bytes:
    img = Image.new(mode, size, (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_rotated() -> bytes:
    """600×300 pixels stored, EXIF orientation 6: shown 300 wide, 600 high."""
    img = Image.new("RGB", (600, 300), (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def bomb() -> bytes:
    """A tiny PNG whose header claims 100,000 × 100,000 pixels (its CRC fixed up)."""
    data = bytearray(png((1, 1), "RGB"))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", 100_000, 100_000)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


async def upload(
    client: AsyncClient,
    seller: Seller,
    product_id: str,
    data: bytes,
    name: str = "photo.png",
    **form: Any,
) -> Any:
    return await client.post(
        f"/v1/products/{product_id}/images",
        files={"file": (name, data, "application/octet-stream")},
        data=form,
        headers=seller.headers,
    )


async def test_bad_uploads_get_clear_problems_and_store_nothing(
    client: AsyncClient, seller: Seller, settings: Settings
) -> None:
    product = await create_product(client, seller, uniq("I"))
    pid = product["id"]
    bmp = io.BytesIO()
    Image.new("RGB", (4, 4)).save(bmp, format="BMP")
    cases = [
        (b"just some text", "unsupported-image", 422),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "unsupported-image", 422),
        (bmp.getvalue(), "unsupported-image", 422),
        (png()[:120], "corrupt-image", 422),
        (bomb(), "image-dimensions-too-large", 422),
        (b"", "unsupported-image", 422),
    ]
    for data, slug, status in cases:
        r = await upload(client, seller, pid, data)
        assert r.status_code == status, (slug, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith(f"/{slug}"), r.json()
        assert r.json()["field"] == "file"

    r = await client.post(f"/v1/products/{pid}/images", headers=seller.headers)
    assert r.status_code == 422  # no file part at all

    # Over the image limit (here lowered to 5 kB) → 413 naming the limit.
    runtime.configure(settings.model_copy(update={"media_max_image_bytes": 5_000}))
    try:
        r = await upload(client, seller, pid, png((400, 400), "RGB") + b"\0" * 6_000)
        assert r.status_code == 413
        assert r.json()["type"].endswith("/image-too-large")
        assert r.json()["limit_bytes"] == 5_000
    finally:
        runtime.configure(settings)
    # Over the request body limit → the same 413 shape from the front door.
    r = await upload(client, seller, pid, b"\0" * (settings.max_body_bytes + 1))
    assert r.status_code == 413
    assert r.json()["type"].endswith("/payload-too-large")

    listed = await client.get(f"/v1/products/{pid}/images", headers=seller.headers)
    assert listed.json()["items"] == []
    folder = settings.media_path / str(seller.tenant_id)
    assert not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))


async def test_an_upload_retried_with_its_key_is_stored_once(
    client: AsyncClient, seller: Seller, settings: Settings
) -> None:
    product = await create_product(client, seller, uniq("K"))
    pid = product["id"]
    data = png((32, 32), "RGB")
    headers = {**seller.headers, "Idempotency-Key": "img-1"}
    files = {"file": ("a.png", data, "image/png")}
    first = await client.post(f"/v1/products/{pid}/images", files=files, headers=headers)
    again = await client.post(f"/v1/products/{pid}/images", files=files, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    listed = await client.get(f"/v1/products/{pid}/images", headers=seller.headers)
    assert [i["id"] for i in listed.json()["items"]] == [first.json()["id"]]
    stored = list((settings.media_path / str(seller.tenant_id)).rglob("*.png"))
    assert len(stored) == 1
    other = {"file": ("a.png", png((33, 33), "RGB"), "image/png")}
    reused = await client.post(f"/v1/products/{pid}/images", files=other, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["type"].endswith("/idempotency-key-reused")


@pytest.fixture
async def live(
    settings: Settings, committed: Database, keyring: Keyring, tmp_path: Path
) -> AsyncIterator[tuple[AsyncClient, Seller, Settings]]:
    """An app on real commits (the worker sees them), with its own media folder."""
    media = settings.model_copy(update={"media_dir": tmp_path / "media", **FAST})
    app = create_app(media, committed, keyring=keyring)
    seller = await make_seller(committed)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as c:
        yield c, seller, media
    runtime.configure(settings)


async def test_thumbnails_are_made_by_the_worker_end_to_end(
    live: tuple[AsyncClient, Seller, Settings], committed: Database, keyring: Keyring
) -> None:
    client, seller, settings = live
    product = await create_product(client, seller, uniq("P"))
    pid = product["id"]
    original = png()
    r = await upload(client, seller, pid, original, name="../../etc/passwd.png", alt_text="Red")
    assert r.status_code == 201, r.text
    image = r.json()
    assert image["status"] == "pending"
    assert image["thumbnails"] == []
    assert (image["width"], image["height"], image["content_type"]) == (800, 600, "image/png")
    assert image["filename"] == "passwd.png"  # a display name only, never a path
    assert image["alt_text"] == "Red"
    rotated = (await upload(client, seller, pid, jpeg_rotated(), name="r.jpg")).json()
    url = f"/v1/products/{pid}/images/{image['id']}"

    async def status_of(image_id: str) -> dict[str, Any]:
        r = await client.get(f"/v1/products/{pid}/images/{image_id}", headers=seller.headers)
        return dict(r.json())

    async with running_worker(settings, committed, keyring):
        ready = await eventually(lambda: _ready(status_of(image["id"])), timeout=30, interval=0.1)
        turned = await eventually(
            lambda: _ready(status_of(rotated["id"])), timeout=30, interval=0.1
        )
    assert [(t["size"], t["width"], t["height"]) for t in ready["thumbnails"]] == [
        (128, 128, 96),
        (512, 512, 384),
    ]
    # The camera's orientation flag is applied: the thumbnail stands upright.
    assert [(t["width"], t["height"]) for t in turned["thumbnails"]] == [(64, 128), (256, 512)]

    got = await client.get(f"{url}/content", headers=seller.headers)
    assert got.status_code == 200
    assert got.content == original
    assert got.headers["content-type"] == "image/png"
    thumb = await client.get(f"{url}/content", params={"size": 128}, headers=seller.headers)
    assert thumb.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(thumb.content)) as decoded:
        assert (decoded.format, decoded.size, decoded.mode) == ("WEBP", (128, 96), "RGBA")
    missing = await client.get(f"{url}/content", params={"size": 64}, headers=seller.headers)
    assert missing.status_code == 404

    processed = await events_of(committed, seller.tenant_id, "product_image.processed")
    assert {(e["image_id"], e["status"]) for e in processed} == {
        (image["id"], "ready"),
        (rotated["id"], "ready"),
    }

    files = sorted((settings.media_path / str(seller.tenant_id)).rglob("*.*"))
    assert len(files) == 6  # two originals, four thumbnails
    async with running_worker(settings, committed, keyring):
        assert (await client.delete(url, headers=seller.headers)).status_code == 204
        assert (await client.get(url, headers=seller.headers)).status_code == 404
        await eventually(
            lambda: len(list((settings.media_path / str(seller.tenant_id)).rglob("*.*"))) == 3,
            timeout=30,
        )


async def _ready(pending: Any) -> dict[str, Any] | None:
    body = await pending
    return body if body["status"] != "pending" else None


async def test_a_missing_original_marks_the_image_failed(
    live: tuple[AsyncClient, Seller, Settings], committed: Database, keyring: Keyring
) -> None:
    client, seller, settings = live
    product = await create_product(client, seller, uniq("F"))
    pid = product["id"]
    image = (await upload(client, seller, pid, png((64, 64), "RGB"))).json()
    for path in (settings.media_path / str(seller.tenant_id)).rglob("*.png"):
        path.unlink()  # the disk lost it before the worker got to it

    async def state() -> dict[str, Any] | None:
        r = await client.get(f"/v1/products/{pid}/images/{image['id']}", headers=seller.headers)
        return await _ready(_value(r.json()))

    async with running_worker(settings, committed, keyring):
        failed = await eventually(state, timeout=30, interval=0.1)
    assert failed["status"] == "failed"
    assert failed["error"]
    r = await client.get(
        f"/v1/products/{pid}/images", params={"status": "failed"}, headers=seller.headers
    )
    assert [i["id"] for i in r.json()["items"]] == [image["id"]]


async def _value(value: Any) -> Any:
    return value
