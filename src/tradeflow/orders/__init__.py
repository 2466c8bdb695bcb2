"""Orders: idempotent order placement, pricing snapshots, tax, approval, the order state machine, invoices."""
