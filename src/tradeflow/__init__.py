"""Tradeflow — an open-source B2B order-to-cash platform."""

__version__ = "0.1.0"
