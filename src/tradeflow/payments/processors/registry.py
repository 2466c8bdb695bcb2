"""The processor registry: every `Processor` in the `tradeflow.processors` entry-point group.

A third-party package adds a processor by declaring

    [project.entry-points."tradeflow.processors"]
    acme = "acme_tradeflow.processor:AcmeProcessor"

and a tenant enables it with `PUT /v1/processors/acme`. A plugin that fails to
import is logged and left out; it never takes the API down.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import entry_points

import structlog

from tradeflow.errors import NotFound
from tradeflow.payments.processors.base import Processor

log = structlog.get_logger(__name__)

ENTRY_POINT_GROUP = "tradeflow.processors"


class UnknownProcessor(NotFound):
    slug, title = "unknown-processor", "Unknown payment processor"


@lru_cache(maxsize=1)
def available() -> dict[str, type[Processor]]:
    """Installed processor plugins by name (loaded once per process)."""
    found: dict[str, type[Processor]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception:  # a broken plugin must not take the rest down
            log.exception("processor_plugin_failed_to_load", entry_point=ep.name)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Processor)):
            log.error("processor_plugin_not_a_processor", entry_point=ep.name)
            continue
        if cls.name != ep.name:
            log.error("processor_plugin_name_mismatch", entry_point=ep.name, name=cls.name)
            continue
        found[cls.name] = cls
    return found


def processor_class(name: str) -> type[Processor]:
    cls = available().get(name)
    if cls is None:
        raise UnknownProcessor(
            f"No processor {name!r} is installed; installed: {', '.join(sorted(available()))}."
        )
    return cls
