"""Product images: validation with Pillow, storage under the media folder, thumbnails.

An upload is checked before anything is stored: its size, that Pillow
recognises it as one of the accepted formats (by content, never by the name
or the declared type), that its pixel count is below the decompression-bomb
limit — read from the header, before any pixel is decoded — and that it
verifies. The original is stored as sent; thumbnails are made later by the
worker (`handlers.make_thumbnails`), so an upload request never pays for
resizing.

Files live under `settings.media_path / <tenant> / products / <product> /`.
Storage keys are relative paths built from ids only, so nothing a client
sends ever becomes part of a path.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from tradeflow.errors import PayloadTooLarge, UnprocessableEntity

ACCEPTED = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
THUMBNAIL_SIZES = (128, 512)
THUMBNAIL_FORMAT = ("WEBP", "webp", "image/webp")


class ImageTooLarge(PayloadTooLarge):
    slug, title = "image-too-large", "Image too large"


class ImageDimensionsTooLarge(UnprocessableEntity):
    slug, title = "image-dimensions-too-large", "Image has too many pixels"


class UnsupportedImage(UnprocessableEntity):
    slug, title = "unsupported-image", "Not a supported image"


class CorruptImage(UnprocessableEntity):
    slug, title = "corrupt-image", "Image is damaged"


@dataclass(frozen=True, slots=True)
class CheckedImage:
    format: str
    content_type: str
    extension: str
    width: int
    height: int
    size_bytes: int
    sha256: str


def check_image(data: bytes, *, max_bytes: int, max_pixels: int) -> CheckedImage:
    """Accept `data` as a product image or raise a problem naming what is wrong."""
    if len(data) > max_bytes:
        raise ImageTooLarge(
            f"The image is {len(data)} bytes; the limit is {max_bytes}.",
            field="file",
            limit_bytes=max_bytes,
        )
    if not data:
        raise UnsupportedImage("The file is empty.", field="file")
    with warnings.catch_warnings():
        # Pillow only *warns* between MAX_IMAGE_PIXELS and twice that; we refuse both.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format or ""
                width, height = probe.size
                if fmt not in ACCEPTED:
                    raise UnsupportedImage(
                        f"{fmt or 'This'} images are not accepted; send "
                        f"{', '.join(sorted(ACCEPTED))}.",
                        field="file",
                    )
                if width * height > max_pixels:
                    raise ImageDimensionsTooLarge(
                        f"The image is {width}×{height} = {width * height} pixels; the limit "
                        f"is {max_pixels} (a decompression-bomb guard).",
                        field="file",
                        limit_pixels=max_pixels,
                    )
                probe.verify()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageDimensionsTooLarge(
                f"The image declares too many pixels (a decompression bomb): {exc}",
                field="file",
                limit_pixels=max_pixels,
            ) from exc
        except UnidentifiedImageError as exc:
            raise UnsupportedImage(
                f"The file is not an image Pillow recognises; send {', '.join(sorted(ACCEPTED))}.",
                field="file",
            ) from exc
        except (OSError, SyntaxError, ValueError) as exc:
            # Truncated or malformed data surfaces as any of these from Pillow's plugins.
            raise CorruptImage(f"The image could not be read: {exc}", field="file") from exc
    return CheckedImage(
        format=fmt,
        content_type=ACCEPTED[fmt],
        extension=EXTENSIONS[fmt],
        width=width,
        height=height,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def storage_key(
    tenant_id: uuid.UUID, product_id: uuid.UUID, image_id: uuid.UUID, extension: str
) -> str:
    return f"{tenant_id}/products/{product_id}/{image_id}.{extension}"


def thumbnail_key(original_key: str, size: int) -> str:
    stem = original_key.rsplit(".", 1)[0]
    return f"{stem}.thumb-{size}.{THUMBNAIL_FORMAT[1]}"


def resolve(media_root: Path, key: str) -> Path:
    """The file of `key`, refusing anything that would leave the media folder."""
    root = media_root.resolve()
    path = (root / key).resolve()
    if root not in path.parents:
        raise ValueError(f"storage key {key!r} escapes the media folder")
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` so that a reader never sees half a file (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class Thumbnail:
    size: int
    key: str
    width: int
    height: int


def make_thumbnails(
    media_root: Path,
    original_key: str,
    *,
    max_pixels: int,
    sizes: tuple[int, ...] = THUMBNAIL_SIZES,
) -> list[Thumbnail]:
    """Decode the original once and write one WebP per size (fits a size×size box).

    CPU-bound: the worker runs it in a thread. Raises `CorruptImage` when the
    stored file cannot be decoded (a permanent failure) and `OSError` when it
    cannot be read or written (worth a retry).
    """
    source = resolve(media_root, original_key)
    data = source.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.size[0] * img.size[1] > max_pixels:
                    raise ImageDimensionsTooLarge("The stored image has too many pixels.")
                img.load()
                # Respect the camera's orientation flag, then drop palette/alpha quirks.
                oriented = ImageOps.exif_transpose(img)
                base = oriented.convert("RGBA" if _has_alpha(oriented) else "RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageDimensionsTooLarge(str(exc)) from exc
        except (UnidentifiedImageError, SyntaxError, ValueError) as exc:
            raise CorruptImage(f"The stored image could not be decoded: {exc}") from exc
        except OSError as exc:
            # Pillow raises OSError for truncated data too; that will not heal on retry.
            raise CorruptImage(f"The stored image could not be decoded: {exc}") from exc
    out: list[Thumbnail] = []
    for size in sizes:
        thumb = base.copy()
        thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        thumb.save(buffer, format=THUMBNAIL_FORMAT[0], quality=82, method=4)
        key = thumbnail_key(original_key, size)
        write_atomically(resolve(media_root, key), buffer.getvalue())
        out.append(Thumbnail(size=size, key=key, width=thumb.width, height=thumb.height))
    return out


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
