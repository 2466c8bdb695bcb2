"""Orders: idempotent placement, pricing snapshots, tax, approval, states, invoices."""
