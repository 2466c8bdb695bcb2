"""The event catalogue in docs/events.md is generated from the code and cannot drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs

from tradeflow.events.catalogue import (
    EVENT_TYPES,
    load_event_modules,
    published_schema,
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


def test_published_schemas_let_consumers_accept_fields_added_later() -> None:
    # A consumer validating with the schema it was given must still accept the same
    # version once an optional field is added (e.g. payment.captured's fee_minor).
    load_event_modules()
    for cls in EVENT_TYPES.values():
        assert '"additionalProperties": false' not in json.dumps(published_schema(cls))
    captured = EVENT_TYPES[("payment.captured", 1)]
    schema = published_schema(captured)
    example = {
        name: _example(spec, schema)
        for name, spec in schema["properties"].items()
        if name in schema.get("required", [])
    }
    jsonschema_rs.validate(schema, example)
    jsonschema_rs.validate(schema, {**example, "field_added_in_a_later_release": 1})
    # The strict schema (what our own publishing enforces) would have refused it.
    assert not jsonschema_rs.is_valid(
        captured.model_json_schema(), {**example, "field_added_in_a_later_release": 1}
    )


def _example(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    if "$ref" in spec:
        spec = schema["$defs"][spec["$ref"].rsplit("/", 1)[1]]
    if "anyOf" in spec:
        spec = spec["anyOf"][0]
    if "enum" in spec:
        return spec["enum"][0]
    kind = spec.get("type")
    if kind == "string":
        return {"uuid": "0192f6c8-7a1b-7c3d-8e4f-123456789abc"}.get(
            spec.get("format", ""), "2026-11-22T00:00:00Z" if spec.get("format") else "x"
        )
    return {"integer": 1, "number": 1, "boolean": True, "array": []}.get(kind or "", {})
