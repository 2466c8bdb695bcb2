"""Taking pulled values over into our documents, through the owning context's service.

One applier per document kind says which of *our* document fields a connected
system may change (`applicable`), how to read the document as the connector
maps it (`load`), and how to write values through the owning context's
service functions — the same validation, version bump and events as an edit
through the API. Nothing here commits.

The defaults, per kind:

* **customer** — the ERP's accounts department keeps billing address, tax id,
  credit limit and payment terms: these can be taken over, as can the name
  (shared by default); currency and the active flag stay ours;
* **invoice** — a financial document of ours: nothing is taken over (amounts,
  number, customer and status are booked here); a shared field changed on
  both sides is still reported as a conflict;
* payments and credit notes are facts from the processor: not pulled.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from tradeflow.customers import service as customers
from tradeflow.errors import ProblemError
from tradeflow.integrations import documents
from tradeflow.integrations.plugins import ObjectType


class InvalidChange(Exception):
    """A pulled value our side does not accept (the change is reported, not applied)."""


class Applier(Protocol):
    applicable: frozenset[str]
    creatable: frozenset[str]

    async def load(self, session: AsyncSession, our_id: str) -> dict[str, Any]: ...

    async def apply(
        self,
        session: AsyncSession,
        our_id: str,
        fields: dict[str, Any],
        *,
        current: dict[str, Any] | None = None,
    ) -> None:
        """Write `fields` (our document's names); `current` is the document if already loaded."""

    async def create(self, session: AsyncSession, fields: dict[str, Any]) -> str | None: ...


class CustomerApplier:
    applicable = frozenset(
        {
            "name",
            "tax_id",
            "billing_address",
            "payment_terms_days",
            "credit_limit",
            "credit_limit_minor",
        }
    )
    # A new customer also needs the currency it is invoiced in.
    creatable = applicable | {"currency"}

    async def load(self, session: AsyncSession, our_id: str) -> dict[str, Any]:
        return await documents.customer_document(session, uuid.UUID(our_id))

    @staticmethod
    def _patch(fields: dict[str, Any], currency: str | None) -> dict[str, Any]:
        patch = {k: v for k, v in fields.items() if k != "credit_limit"}
        if "credit_limit" in fields:
            value = fields["credit_limit"]
            if value is None or value == "":
                patch["credit_limit_minor"] = None
            else:
                if currency is None:
                    raise InvalidChange("a credit limit needs the customer's currency")
                try:
                    patch["credit_limit_minor"] = documents.minor_from_text(value, currency)
                except ValueError as exc:
                    raise InvalidChange(f"credit_limit: {exc}") from exc
        return patch

    async def apply(
        self,
        session: AsyncSession,
        our_id: str,
        fields: dict[str, Any],
        *,
        current: dict[str, Any] | None = None,
    ) -> None:
        customer_id = uuid.UUID(our_id)
        if current is None:
            current = await self.load(session, our_id)
        patch = self._patch(fields, str(current["currency"]))
        try:
            await customers.apply_external_changes(session, customer_id, patch)
        except ProblemError as exc:
            raise InvalidChange(exc.detail or exc.title) from exc

    async def create(self, session: AsyncSession, fields: dict[str, Any]) -> str | None:
        currency = fields.get("currency")
        patch = self._patch(fields, currency if isinstance(currency, str) else None)
        try:
            view = await customers.create_from_external(session, patch)
        except ProblemError as exc:
            raise InvalidChange(exc.detail or exc.title) from exc
        return str(view.id)


class InvoiceApplier:
    applicable: frozenset[str] = frozenset()
    creatable: frozenset[str] = frozenset()

    async def load(self, session: AsyncSession, our_id: str) -> dict[str, Any]:
        return await documents.invoice_document(session, uuid.UUID(our_id))

    async def apply(
        self,
        session: AsyncSession,
        our_id: str,
        fields: dict[str, Any],
        *,
        current: dict[str, Any] | None = None,
    ) -> None:
        if fields:
            raise InvalidChange("invoices are not changed from outside")

    async def create(self, session: AsyncSession, fields: dict[str, Any]) -> str | None:
        return None


APPLIERS: dict[ObjectType, Applier] = {
    ObjectType.CUSTOMER: CustomerApplier(),
    ObjectType.INVOICE: InvoiceApplier(),
}
