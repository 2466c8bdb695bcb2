"""Beancount ledger-file connector."""
