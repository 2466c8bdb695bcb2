"""Validated text and JSON for names, codes and free-form attributes.

PostgreSQL refuses NUL in `text` and `jsonb`, and asyncpg cannot encode a lone
UTF-16 surrogate (JSON allows `"\\ud800"`); either would surface as a 500. So
every client string is NFC-normalised, stripped, and refused when it holds
control, surrogate or private-use characters — a 422 naming the field instead.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

# Categories no name, code or description has a use for: controls (Cc, incl. NUL),
# surrogates (Cs), unassigned (Cn) and private use (Co). Format characters (Cf)
# are allowed: zero-width joiners belong in emoji and several scripts.
_REFUSED = {"Cc", "Cs", "Cn", "Co"}
_ALLOWED_CONTROLS = {"\n", "\t"}  # in multi-line descriptions only


def _clean(value: str, *, multiline: bool) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    for ch in value:
        if unicodedata.category(ch) in _REFUSED and not (multiline and ch in _ALLOWED_CONTROLS):
            raise ValueError(f"contains a disallowed character U+{ord(ch):04X}")
    return value


def clean_line(value: str) -> str:
    return _clean(value, multiline=False)


def clean_text(value: str) -> str:
    return _clean(value, multiline=True)


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be blank")
    return value


Name = Annotated[
    str,
    StringConstraints(max_length=200),
    AfterValidator(clean_line),
    AfterValidator(_non_empty),
]
"""A display name: 1–200 characters after trimming, one line, no control characters."""

Line = Annotated[str, StringConstraints(max_length=200), AfterValidator(clean_line)]
"""An optional one-line text (may be empty)."""

Description = Annotated[str, StringConstraints(max_length=5000), AfterValidator(clean_text)]
"""Free text up to 5,000 characters; newlines and tabs allowed."""

MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_DEPTH = 3
MAX_ATTRIBUTE_STRING = 1000


def _check_json(value: Any, *, depth: int, path: str) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_ATTRIBUTE_STRING:
            raise ValueError(f"{path}: strings are at most {MAX_ATTRIBUTE_STRING} characters")
        return clean_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        # JSON numbers past 2^53 lose precision in most clients; refuse them early.
        if abs(value) > 2**53:
            raise ValueError(f"{path}: integers are at most 2^53 in magnitude")
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{path}: numbers must be finite")
        return value
    if depth >= MAX_ATTRIBUTE_DEPTH:
        raise ValueError(f"{path}: nested deeper than {MAX_ATTRIBUTE_DEPTH} levels")
    if isinstance(value, list):
        if len(value) > MAX_ATTRIBUTES:
            raise ValueError(f"{path}: lists hold at most {MAX_ATTRIBUTES} items")
        return [_check_json(v, depth=depth + 1, path=f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return _check_object(value, depth=depth + 1, path=path)
    raise ValueError(f"{path}: unsupported JSON value")


def _check_object(value: dict[str, Any], *, depth: int, path: str) -> dict[str, Any]:
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"{path}: at most {MAX_ATTRIBUTES} keys")
    out: dict[str, Any] = {}
    for key, item in value.items():
        clean_key = clean_line(key)
        if not clean_key or len(clean_key) > 100:
            raise ValueError(f"{path}: keys are 1–100 characters")
        out[clean_key] = _check_json(item, depth=depth, path=f"{path}.{clean_key}")
    return out


def _attributes(value: dict[str, Any]) -> dict[str, Any]:
    return _check_object(value, depth=1, path="attributes")


Attributes = Annotated[
    dict[str, Any],
    AfterValidator(_attributes),
    Field(
        description=(
            f"Free-form JSON object: at most {MAX_ATTRIBUTES} keys per object, "
            f"{MAX_ATTRIBUTE_DEPTH} levels deep, strings up to {MAX_ATTRIBUTE_STRING} characters."
        ),
        examples=[{"colour": "red", "weight_g": 250}],
    ),
]
