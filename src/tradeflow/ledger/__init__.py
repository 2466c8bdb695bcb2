"""Ledger: the double-entry journal.

Every invoice, payment, refund and fee is posted once, keyed by the event that
reported it; the books balance because PostgreSQL refuses to commit an entry
that does not (docs/ledger.md, docs/adr/0009-ledger-balance-enforcement.md).
Other contexts read it through `tradeflow.ledger.service`.
"""
