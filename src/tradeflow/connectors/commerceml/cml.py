"""Reading CommerceML 2 files safely, and writing order documents.

The files come from outside (1C, or whoever holds the exchange's password), so
they are parsed with defusedxml: a document type declaration of any kind is
refused (no entity expansion — billion laughs — and no external entities or
network access), and the caller caps the size before parsing. Element names
are matched by local name, so files with or without the
`urn:1C.ru:commerceml_2` namespace read the same.

Parsing is pure: `parse_catalog` turns `import.xml` / `offers.xml` (or one file
holding both) into rows; a row that cannot be read becomes a `Problem` with
1C's Ид and the reason, and the rest of the file still counts.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from defusedxml import DefusedXmlException  # type: ignore[import-untyped]
from defusedxml.ElementTree import fromstring  # type: ignore[import-untyped]

ROOT = "КоммерческаяИнформация"

# How 1C names currencies: its own short names, ISO numeric or letter codes.
CURRENCY_ALIASES = {
    "РУБ": "RUB",
    "РУБ.": "RUB",
    "RUR": "RUB",
    "643": "RUB",
    "ГРН": "UAH",
    "ГРН.": "UAH",
    "980": "UAH",
    "ТЕНГЕ": "KZT",
    "ТГ": "KZT",
    "398": "KZT",
    "БЕЛ. РУБ.": "BYN",
    "BYR": "BYN",
    "933": "BYN",
    "USD": "USD",
    "840": "USD",
    "EUR": "EUR",
    "978": "EUR",
}


class MalformedFile(Exception):
    """The file is not a CommerceML document we can read at all."""


@dataclass(frozen=True, slots=True)
class Problem:
    id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ProductRow:
    id: str
    name: str
    article: str | None
    unit: str | None
    description: str
    group: str | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class PriceRow:
    price_type_id: str
    price_type_name: str | None
    amount: str
    currency: str | None


@dataclass(frozen=True, slots=True)
class OfferRow:
    id: str  # "product" or "product#characteristic"
    name: str | None
    article: str | None
    unit: str | None
    characteristics: dict[str, str]
    prices: list[PriceRow]
    deleted: bool

    @property
    def product_id(self) -> str:
        return self.id.split("#", 1)[0]

    @property
    def variant_id(self) -> str | None:
        parts = self.id.split("#", 1)
        return parts[1] if len(parts) == 2 and parts[1] else None


@dataclass(frozen=True, slots=True)
class PriceType:
    id: str
    name: str
    currency: str | None


@dataclass
class CatalogFile:
    products: list[ProductRow] = field(default_factory=list)
    offers: list[OfferRow] = field(default_factory=list)
    price_types: dict[str, PriceType] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    only_changes: bool = False


def _local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1]


def _children(node: ET.Element, name: str) -> Iterator[ET.Element]:
    for child in node:
        if _local(child.tag) == name:
            yield child


def _child(node: ET.Element, name: str) -> ET.Element | None:
    return next(_children(node, name), None)


def _each(node: ET.Element | None, container: str, item: str) -> Iterator[ET.Element]:
    """The `item` children of `node`'s `container` child (none when either is missing)."""
    holder = _child(node, container) if node is not None else None
    if holder is not None:
        yield from _children(holder, item)


def _text(node: ET.Element, name: str) -> str | None:
    found = _child(node, name)
    if found is None or found.text is None:
        return None
    value = found.text.strip()
    return value or None


def _path(node: ET.Element, *names: str) -> ET.Element | None:
    current: ET.Element | None = node
    for name in names:
        if current is None:
            return None
        current = _child(current, name)
    return current


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "да")


def parse_xml(data: bytes) -> ET.Element:
    """The document's root, or `MalformedFile` (syntax, a DTD, entities, another root)."""
    try:
        root: ET.Element = fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise MalformedFile(
            f"refused: the file declares a DTD or entities ({type(exc).__name__})"
        ) from exc
    except ET.ParseError as exc:
        raise MalformedFile(f"not well-formed XML: {exc}") from exc
    if _local(root.tag) != ROOT:
        raise MalformedFile(f"the root element is {_local(root.tag)!r}, not {ROOT!r}")
    return root


def _groups(node: ET.Element | None, out: dict[str, str]) -> None:
    if node is None:
        return
    for group in _children(node, "Группа"):
        gid, name = _text(group, "Ид"), _text(group, "Наименование")
        if gid and name:
            out[gid] = name
        _groups(_child(group, "Группы"), out)


def _requisites(node: ET.Element) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in _each(node, "ЗначенияРеквизитов", "ЗначениеРеквизита"):
        name, value = _text(item, "Наименование"), _text(item, "Значение")
        if name and value is not None:
            out[name] = value
    return out


def _product(node: ET.Element, groups: dict[str, str]) -> ProductRow | Problem:
    pid = _text(node, "Ид")
    if not pid:
        return Problem(_text(node, "Наименование") or "?", "a product without Ид")
    name = _text(node, "Наименование")
    if not name:
        return Problem(pid, "a product without Наименование")
    group_ids = [g.text.strip() for g in _each(node, "Группы", "Ид") if g.text]
    group = next((groups[g] for g in group_ids if g in groups), None)
    deleted = (
        node.get("Статус") == "Удален"
        or _truthy(_text(node, "ПометкаУдаления"))
        or _truthy(_requisites(node).get("ПометкаУдаления"))
    )
    return ProductRow(
        id=pid,
        name=name,
        article=_text(node, "Артикул"),
        unit=_text(node, "БазоваяЕдиница"),
        description=_text(node, "Описание") or "",
        group=group,
        deleted=deleted,
    )


def _offer(node: ET.Element) -> OfferRow | Problem:
    oid = _text(node, "Ид")
    if not oid:
        return Problem(_text(node, "Наименование") or "?", "an offer without Ид")
    chars: dict[str, str] = {}
    for item in _each(node, "ХарактеристикиТовара", "ХарактеристикаТовара"):
        name, value = _text(item, "Наименование"), _text(item, "Значение")
        if name and value is not None:
            chars[name] = value
    prices: list[PriceRow] = []
    for price in _each(node, "Цены", "Цена"):
        type_id = _text(price, "ИдТипаЦены")
        amount = _text(price, "ЦенаЗаЕдиницу")
        if not type_id or amount is None:
            return Problem(oid, "a price without ИдТипаЦены or ЦенаЗаЕдиницу")
        prices.append(
            PriceRow(type_id, _text(price, "Представление"), amount, _text(price, "Валюта"))
        )
    return OfferRow(
        id=oid,
        name=_text(node, "Наименование"),
        article=_text(node, "Артикул"),
        unit=_text(node, "БазоваяЕдиница"),
        characteristics=chars,
        prices=prices,
        deleted=node.get("Статус") == "Удален" or _truthy(_text(node, "ПометкаУдаления")),
    )


def parse_catalog(data: bytes) -> CatalogFile:
    """Products (`Каталог`), price types and offers (`ПакетПредложений`) of one file."""
    root = parse_xml(data)
    out = CatalogFile()
    groups: dict[str, str] = {}
    _groups(_path(root, "Классификатор", "Группы"), groups)
    catalog = _child(root, "Каталог")
    offers = _child(root, "ПакетПредложений")
    if offers is None:
        offers = _child(root, "ИзмененияПакетаПредложений")
    if catalog is None and offers is None:
        raise MalformedFile("neither Каталог nor ПакетПредложений is in the file")
    if catalog is not None:
        out.only_changes = _truthy(catalog.get("СодержитТолькоИзменения"))
        for node in _each(catalog, "Товары", "Товар"):
            row = _product(node, groups)
            if isinstance(row, Problem):
                out.problems.append(row)
            else:
                out.products.append(row)
    if offers is not None:
        for node in _each(offers, "ТипыЦен", "ТипЦены"):
            tid, name = _text(node, "Ид"), _text(node, "Наименование")
            if tid:
                out.price_types[tid] = PriceType(tid, name or tid, _text(node, "Валюта"))
        for node in _each(offers, "Предложения", "Предложение"):
            offer = _offer(node)
            if isinstance(offer, Problem):
                out.problems.append(offer)
            else:
                out.offers.append(offer)
    return out


def currency_code(value: str | None) -> str | None:
    """An ISO 4217 letter code for what 1C wrote (`руб`, `643`, `RUB`), None if unknown."""
    if not value:
        return None
    key = value.strip().upper()
    if key in CURRENCY_ALIASES:
        return CURRENCY_ALIASES[key]
    return key if re.fullmatch(r"[A-Z]{3}", key) else None


def to_minor(amount: str, exponent: int) -> int:
    """`"1 250,50"` → 125050 for exponent 2; ValueError when it has more decimals than that."""
    text = amount.replace("\u00a0", "").replace(" ", "").replace(",", ".")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"{amount!r} is not a number") from exc
    if not value.is_finite() or value < 0:
        raise ValueError(f"{amount!r} is not a price")
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount!r} has more than {exponent} decimals")
    return int(scaled)


# -- writing --------------------------------------------------------------------------------------


def element(parent: ET.Element, name: str, text: str | None = None, **attrs: str) -> ET.Element:
    node = ET.SubElement(parent, name, attrs)
    if text is not None:
        node.text = text
    return node


def requisite(parent: ET.Element, name: str, value: str) -> None:
    item = element(parent, "ЗначениеРеквизита")
    element(item, "Наименование", name)
    element(item, "Значение", value)


def new_document(generated_at: str) -> ET.Element:
    return ET.Element(ROOT, {"ВерсияСхемы": "2.08", "ДатаФормирования": generated_at})


def serialize(root: ET.Element) -> bytes:
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"
