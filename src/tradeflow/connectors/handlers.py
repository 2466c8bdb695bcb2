"""Internal event handlers of the shipped connectors (imported by the worker's plugin loader)."""

from tradeflow.connectors.commerceml import handlers as _commerceml  # noqa: F401
