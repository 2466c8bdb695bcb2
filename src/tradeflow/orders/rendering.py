"""Invoice documents: HTML (Jinja2, autoescaped) and PDF (fpdf2 with an embedded DejaVu Sans).

Why fpdf2 and a bundled font: see docs/adr/0007-invoice-rendering.md. Both renderings take
the same `InvoiceDocument`, so what the HTML shows and what the PDF prints cannot differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.fonts import FontFace
from jinja2 import Environment, PackageLoader, select_autoescape

from tradeflow.orders.models import Invoice, OrderLine

FONTS = Path(__file__).parent / "fonts"

# ISO 4217 currencies whose minor unit is not 1/100 (the rest have two decimals).
_EXPONENT = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    "CLF": 4,
    "UYW": 4,
}


def minor_exponent(currency: str) -> int:
    return _EXPONENT.get(currency, 2)


def format_minor(amount: int, currency: str) -> str:
    """12345 EUR → '123.45'; exact, from integers (no float ever formats money)."""
    exp = minor_exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**exp)
    grouped = f"{whole:,}"
    return f"{sign}{grouped}.{frac:0{exp}d}" if exp else f"{sign}{grouped}"


def format_percent(rate: Decimal) -> str:
    return f"{rate.normalize():f}%"


@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    invoice: Invoice
    lines: list[OrderLine]
    reference: str | None

    @property
    def amount_due(self) -> int:
        return amount_due(self.invoice)


def amount_due(invoice: Invoice) -> int:
    if invoice.status in ("void", "refunded"):
        return 0
    return max(0, invoice.total_minor - invoice.amount_paid_minor)


_env = Environment(
    loader=PackageLoader("tradeflow.orders", "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,
)


def render_html(doc: InvoiceDocument) -> str:
    currency = doc.invoice.currency
    return _env.get_template("invoice.html").render(
        invoice=doc.invoice,
        lines=doc.lines,
        reference=doc.reference,
        amount_due=doc.amount_due,
        money=lambda amount: format_minor(amount, currency),
        percent=format_percent,
    )


def render_pdf(doc: InvoiceDocument) -> bytes:
    inv = doc.invoice
    money = _money(inv.currency)
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_creation_date(inv.issued_at)  # the same invoice always renders the same bytes
    pdf.set_title(f"Invoice {inv.number}")
    pdf.set_author("Tradeflow")
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()

    pdf.set_font("DejaVu", "B", 18)
    pdf.cell(0, 10, f"Invoice {inv.number}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 10)
    meta = [
        ("Bill to", inv.customer_name),
        ("Issued", inv.issued_at.date().isoformat()),
        ("Due", f"{inv.due_date.isoformat()} (net {inv.payment_terms_days} days)"),
        (
            "Order",
            str(inv.order_id) + (f" — your reference {doc.reference}" if doc.reference else ""),
        ),
        ("Status", inv.status),
        ("Currency", inv.currency),
    ]
    for label, value in meta:
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(28, 6, label)
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(0, 6, value, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    pdf.set_font("DejaVu", "", 9)
    right = ("LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT")
    with pdf.table(
        col_widths=(8, 26, 52, 20, 24, 24, 22, 24),
        text_align=right,
        headings_style=FontFace(emphasis="BOLD"),
        line_height=5.5,
    ) as table:
        table.row(["#", "SKU", "Description", "Qty", "Unit price", "Net", "Tax", "Total"])
        for line in doc.lines:
            table.row(
                [
                    str(line.line_no),
                    line.sku,
                    line.name,
                    f"{line.quantity} {line.unit}",
                    money(line.unit_price_minor),
                    money(line.net_minor),
                    money(line.tax_minor),
                    money(line.total_minor),
                ]
            )
    pdf.ln(3)
    totals = [
        ("Subtotal", inv.subtotal_minor),
        ("Tax", inv.tax_minor),
        (f"Total {inv.currency}", inv.total_minor),
        ("Paid", inv.amount_paid_minor),
        ("Amount due", doc.amount_due),
    ]
    for label, amount in totals:
        pdf.set_font("DejaVu", "B" if label.startswith(("Total", "Amount")) else "", 10)
        pdf.cell(150, 6, label, align="R")
        pdf.cell(0, 6, money(amount), align="R", new_x="LMARGIN", new_y="NEXT")
    out: Any = pdf.output()
    return bytes(out)


def _money(currency: str) -> Any:
    return lambda amount: format_minor(amount, currency)
