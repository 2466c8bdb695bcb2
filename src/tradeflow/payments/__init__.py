"""Payments: processor plugins, payment intents, captures, refunds, inbound processor webhooks.

See docs/payments.md and docs/adr/0008-payment-processors.md.
"""
