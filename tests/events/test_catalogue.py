"""The event catalogue in docs/events.md is generated from the code and cannot drift."""

from __future__ import annotations

from pathlib import Path

from tradeflow.events.catalogue import (
    EVENT_TYPES,
    load_event_modules,
    render_catalogue,
    replace_catalogue,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_docs_catalogue_matches_the_code() -> None:
    load_event_modules()
    current = DOC.read_text()
    assert replace_catalogue(current, render_catalogue()) == current, (
        "docs/events.md is stale: run `tradeflow events catalogue --write docs/events.md`"
    )


def test_every_product_event_type_is_documented_with_its_schema() -> None:
    load_event_modules()
    text = DOC.read_text()
    product = [k for k, cls in EVENT_TYPES.items() if cls.__module__.startswith("tradeflow.")]
    assert product
    for name, version in product:
        assert f"### `{name}` v{version}" in text


def test_replace_keeps_the_handwritten_part() -> None:
    doc = "# Title\n\nintro\n"
    block = render_catalogue()
    once = replace_catalogue(doc, block)
    assert once.startswith("# Title\n\nintro\n")
    assert replace_catalogue(once, block) == once
