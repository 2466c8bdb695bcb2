"""The background worker: runs until its stop event is set.

The events context grows this into the outbox delivery engine and scheduler;
at the foundation stage it owns the process lifecycle only.
"""

from __future__ import annotations

import asyncio

import structlog

from tradeflow.config import Settings
from tradeflow.db import Database
from tradeflow.kit.keyring import Keyring

log = structlog.get_logger(__name__)


async def run_worker(settings: Settings, db: Database, keyring: Keyring, stop: asyncio.Event) -> None:
    log.info("worker_started")
    await stop.wait()
    log.info("worker_stopped")
