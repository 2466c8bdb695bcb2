"""Payments' periodic jobs: resolve processor calls whose outcome is unknown."""

from __future__ import annotations

from tradeflow.events import JobContext, scheduled
from tradeflow.kit.keyring import load_keyring
from tradeflow.payments.resolver import resolve_due


@scheduled("payments.resolve", cron="* * * * * */5", timeout=120)
async def resolve_unknown_outcomes(ctx: JobContext) -> None:
    """Every 5 s: ask processors about timed-out calls (never resend them)."""
    await resolve_due(ctx.db, load_keyring(ctx.settings, create=False))
