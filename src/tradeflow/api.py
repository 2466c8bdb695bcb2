"""Where every context's `/v1` router is mounted — the one list of the public API."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from tradeflow.config import Settings


def install_routers(app: FastAPI, settings: Settings) -> None:
    v1 = APIRouter(prefix="/v1")
    # Each context contributes its router here, in one place.
    # Routes are matched in this order, each costing a regex test per request: the order
    # hot path (POST /v1/orders, bench/orders.py) goes first.
    from tradeflow.orders.endpoints import router as orders_router

    v1.include_router(orders_router)
    from tradeflow.identity.endpoints import router as identity_router

    v1.include_router(identity_router)
    from tradeflow.ledger.endpoints import router as ledger_router

    v1.include_router(ledger_router)
    from tradeflow.events.endpoints import router as events_router
    from tradeflow.webhooks.endpoints import router as webhooks_router

    v1.include_router(events_router)
    v1.include_router(webhooks_router)
    from tradeflow.integrations.endpoints import router as integrations_router

    v1.include_router(integrations_router)
    from tradeflow.connectors.commerceml.endpoints import router as commerceml_router

    v1.include_router(commerceml_router)
    from tradeflow.payments.endpoints import router as payments_router

    v1.include_router(payments_router)
    from tradeflow.catalog.endpoints import router_for as catalog_router_for
    from tradeflow.customers.endpoints import router as customers_router

    v1.include_router(customers_router)
    v1.include_router(catalog_router_for(settings))
    app.include_router(v1)
