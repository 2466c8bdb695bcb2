"""Fixtures for observability tests: the production JSON log set-up, writing into a buffer."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from tradeflow.observability.logging import configure_logging


class JsonLog:
    """The lines logged so far, parsed; a line that is not one JSON object fails the test."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.buffer.getvalue().splitlines():
            parsed = json.loads(raw)
            assert isinstance(parsed, dict), raw
            out.append(parsed)
        return out

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("event") == name]


@pytest.fixture
def json_log() -> Iterator[JsonLog]:
    saved = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    captured = JsonLog()
    configure_logging("info", "json", stream=captured.buffer)
    try:
        yield captured
    finally:
        structlog.configure(**saved)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
