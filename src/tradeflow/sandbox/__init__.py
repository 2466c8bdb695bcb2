"""The sandbox processor: a stand-in for a remote payment processor, shipped in-tree.

It is deliberately *not* part of Tradeflow's process or database. It runs as
its own small HTTP service on 127.0.0.1 (`tradeflow sandbox`, or inside
`tradeflow up --demo`), keeps its state in its own PostgreSQL database, and
talks to Tradeflow only the way a real processor would: Tradeflow calls its
API with an API key and an `Idempotency-Key`; it calls back with signed,
asynchronous webhooks (Standard Webhooks signing).

Two listeners:

* the **API** (`/v1/charges`, `/v1/refunds`) — what the processor plugin
  calls;
* the **control plane** (`/accounts`, `/faults`, `/down`, …) — what tests,
  the demo seeder and an operator use to create merchant accounts and to
  inject faults: declines, a response delayed until after the caller timed
  out (the charge is committed first), the API being down (its listener is
  closed, so callers get *connection refused*), and webhooks sent twice,
  held back and released out of order, badly signed or with a stale
  timestamp.

See docs/payments.md for the API and the fault switches.
"""
