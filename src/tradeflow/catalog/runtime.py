"""Process-wide catalog configuration: the media folder, image limits and the price cache.

Configured from settings when the API is built (`endpoints.router_for`) and,
in a worker-only process, from the environment on first use. Service
functions are called with a session only (other contexts call `quote`), so
this is where they find the cache and the media folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tradeflow.catalog import cache
from tradeflow.config import Settings, get_settings


@dataclass(frozen=True, slots=True)
class CatalogConfig:
    media_root: Path
    max_image_bytes: int
    max_image_pixels: int


_config: CatalogConfig | None = None


def configure(settings: Settings) -> CatalogConfig:
    global _config
    _config = CatalogConfig(
        media_root=settings.media_path.resolve(),
        max_image_bytes=settings.media_max_image_bytes,
        max_image_pixels=settings.media_max_image_pixels,
    )
    cache.configure(settings)
    return _config


def config() -> CatalogConfig:
    return _config if _config is not None else configure(get_settings())
