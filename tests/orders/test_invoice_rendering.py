"""Invoice renderings: money formatting, HTML escaping, a PDF with the embedded font."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tradeflow.orders.models import Invoice, OrderLine
from tradeflow.orders.rendering import (
    InvoiceDocument,
    format_minor,
    format_percent,
    render_html,
    render_pdf,
)


def document(
    customer_name: str = "Åcme Größhandel Ελλάς ООО", line_name: str = "Widget"
) -> InvoiceDocument:
    order_id = uuid.uuid4()
    invoice = Invoice(
        id=uuid.uuid4(),
        order_id=order_id,
        customer_id=uuid.uuid4(),
        customer_name=customer_name,
        number="INV-2026-000042",
        year=2026,
        sequence=42,
        currency="EUR",
        subtotal_minor=123_400,
        tax_minor=24_680,
        total_minor=148_080,
        amount_paid_minor=48_080,
        amount_refunded_minor=0,
        status="partially_paid",
        issued_at=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
        due_date=date(2026, 3, 31),
        payment_terms_days=30,
    )
    lines = [
        OrderLine(
            line_no=1,
            sku="W-1",
            sku_id=uuid.uuid4(),
            product_id=uuid.uuid4(),
            name=line_name,
            unit="pc",
            quantity=2,
            unit_price_minor=61_700,
            tax_code="STD",
            tax_rate=Decimal("20.0000"),
            net_minor=123_400,
            tax_minor=24_680,
            total_minor=148_080,
            price_rule={"kind": "base"},
        )
    ]
    return InvoiceDocument(invoice, lines, "PO-7")


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (0, "EUR", "0.00"),
        (5, "EUR", "0.05"),
        (123_456_789, "USD", "1,234,567.89"),
        (1234, "JPY", "1,234"),
        (1234, "KWD", "1.234"),
        (-150, "EUR", "-1.50"),
    ],
)
def test_format_minor(amount: int, currency: str, text: str) -> None:
    assert format_minor(amount, currency) == text


def test_format_percent() -> None:
    assert format_percent(Decimal("20.0000")) == "20%"
    assert format_percent(Decimal("7.6750")) == "7.675%"


def test_html_shows_the_invoice_and_escapes_names() -> None:
    html = render_html(document(customer_name="<script>alert(1)</script> & Co"))
    assert "INV-2026-000042" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in html
    assert "<script>" not in html
    assert "1,480.80" in html  # total
    assert "1,000.00" in html  # amount due = 1,480.80 − 480.80
    assert "2026-03-31" in html
    assert "PO-7" in html


def test_pdf_embeds_the_font_and_is_reproducible() -> None:
    doc = document()
    pdf = render_pdf(doc)
    assert pdf.startswith(b"%PDF-")
    assert b"DejaVu" in pdf  # the TTF is embedded, so non-Latin-1 names render
    assert render_pdf(doc) == pdf  # same invoice, same bytes


def test_pdf_survives_long_names_and_many_lines() -> None:
    doc = document(line_name="A very long product description " * 12)
    doc.lines.extend(doc.lines[0] for _ in range(45))  # spills onto a second page
    assert render_pdf(doc).startswith(b"%PDF-")
