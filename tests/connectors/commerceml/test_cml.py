"""Reading CommerceML: encodings, namespaces, amounts and currencies as 1C writes them."""

from __future__ import annotations

import pytest

from connectors.commerceml.support import data
from tradeflow.connectors.commerceml import cml


def test_a_windows_1251_file_without_namespace_reads_like_the_utf8_one() -> None:
    utf8 = cml.parse_catalog(data("import.xml"))
    text = (
        data("import.xml")
        .decode()
        .replace('encoding="UTF-8"', 'encoding="windows-1251"')
        .replace(' xmlns="urn:1C.ru:commerceml_2"', "")
        .replace("×", "x")
        .replace("²", "2")
    )
    legacy = cml.parse_catalog(text.encode("cp1251"))
    assert [p.id for p in legacy.products] == [p.id for p in utf8.products]
    assert legacy.products[1].name == "Гайка М8 шестигранная"
    assert legacy.problems == utf8.problems


@pytest.mark.parametrize(
    ("amount", "exponent", "minor"),
    [
        ("12.50", 2, 1250),
        ("1 250,5", 2, 125050),
        ("15", 2, 1500),
        ("3300", 0, 3300),
        ("1.234", 3, 1234),
    ],
)
def test_amounts_become_minor_units(amount: str, exponent: int, minor: int) -> None:
    assert cml.to_minor(amount, exponent) == minor


@pytest.mark.parametrize("amount", ["449.995", "-1", "abc", "NaN"])
def test_amounts_that_would_need_rounding_or_are_not_prices_are_refused(amount: str) -> None:
    with pytest.raises(ValueError, match=amount.lstrip("-") if amount != "NaN" else "price"):
        cml.to_minor(amount, 2)


def test_currencies_as_1c_names_them() -> None:
    assert [cml.currency_code(v) for v in ("руб", "руб.", "643", "RUB", "usd", "ХЗ")] == [
        "RUB",
        "RUB",
        "RUB",
        "RUB",
        "USD",
        None,
    ]


def test_neither_catalog_nor_offers_is_a_malformed_file() -> None:
    with pytest.raises(cml.MalformedFile, match="neither"):
        cml.parse_catalog("<КоммерческаяИнформация/>".encode())
    with pytest.raises(cml.MalformedFile, match="root"):
        cml.parse_catalog(b"<root/>")
