"""The sandbox database's tables, created on start (a test double's storage: no migrations)."""

from __future__ import annotations

SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS sandbox_accounts (
      id text PRIMARY KEY,
      name text NOT NULL,
      api_key_hash text NOT NULL UNIQUE,
      webhook_url text,
      webhook_secret text NOT NULL,
      faults jsonb NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS sandbox_charges (
      id text PRIMARY KEY,
      account_id text NOT NULL REFERENCES sandbox_accounts (id) ON DELETE CASCADE,
      amount bigint NOT NULL,
      currency text NOT NULL,
      amount_captured bigint NOT NULL DEFAULT 0,
      amount_refunded bigint NOT NULL DEFAULT 0,
      status text NOT NULL,
      payment_method text NOT NULL,
      reference text,
      description text,
      failure_code text,
      failure_message text,
      version integer NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS sandbox_charges_reference "
    "ON sandbox_charges (account_id, reference)",
    """
    CREATE TABLE IF NOT EXISTS sandbox_captures (
      id text PRIMARY KEY,
      charge_id text NOT NULL REFERENCES sandbox_charges (id) ON DELETE CASCADE,
      amount bigint NOT NULL,
      reference text,
      created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS sandbox_captures_charge ON sandbox_captures (charge_id)",
    """
    CREATE TABLE IF NOT EXISTS sandbox_refunds (
      id text PRIMARY KEY,
      account_id text NOT NULL REFERENCES sandbox_accounts (id) ON DELETE CASCADE,
      charge_id text NOT NULL REFERENCES sandbox_charges (id) ON DELETE CASCADE,
      amount bigint NOT NULL,
      currency text NOT NULL,
      status text NOT NULL,
      reason text,
      reference text,
      failure_code text,
      version integer NOT NULL DEFAULT 1,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS sandbox_refunds_reference "
    "ON sandbox_refunds (account_id, reference)",
    """
    CREATE TABLE IF NOT EXISTS sandbox_idempotency (
      account_id text NOT NULL REFERENCES sandbox_accounts (id) ON DELETE CASCADE,
      key text NOT NULL,
      fingerprint text NOT NULL,
      status_code integer NOT NULL,
      body jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (account_id, key)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS sandbox_webhook_events (
      seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      id text NOT NULL UNIQUE,
      account_id text NOT NULL REFERENCES sandbox_accounts (id) ON DELETE CASCADE,
      type text NOT NULL,
      payload jsonb NOT NULL,
      status text NOT NULL,
      copies integer NOT NULL DEFAULT 1,
      send_order bigint NOT NULL DEFAULT 0,
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL DEFAULT now(),
      last_status integer,
      last_error text,
      delivered_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS sandbox_webhook_events_due
      ON sandbox_webhook_events (next_attempt_at, send_order) WHERE status = 'pending'
    """,
    """
    CREATE TABLE IF NOT EXISTS sandbox_webhook_attempts (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      event_id text NOT NULL REFERENCES sandbox_webhook_events (id) ON DELETE CASCADE,
      status_code integer,
      error text,
      at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS sandbox_webhook_attempts_event "
    "ON sandbox_webhook_attempts (event_id)",
    # Fees (added after the first release: existing sandbox databases get the columns too).
    "ALTER TABLE sandbox_accounts ADD COLUMN IF NOT EXISTS fee_bps integer NOT NULL DEFAULT 290",
    "ALTER TABLE sandbox_accounts ADD COLUMN IF NOT EXISTS fee_fixed bigint NOT NULL DEFAULT 30",
    "ALTER TABLE sandbox_captures ADD COLUMN IF NOT EXISTS fee bigint NOT NULL DEFAULT 0",
    # The processor's books: one row per money movement, in the order they happened.
    """
    CREATE TABLE IF NOT EXISTS sandbox_balance_transactions (
      seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      id text NOT NULL UNIQUE,
      account_id text NOT NULL REFERENCES sandbox_accounts (id) ON DELETE CASCADE,
      type text NOT NULL,
      charge_id text NOT NULL REFERENCES sandbox_charges (id) ON DELETE CASCADE,
      source_id text NOT NULL,
      amount bigint NOT NULL,
      fee bigint NOT NULL DEFAULT 0,
      currency text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS sandbox_balance_transactions_account "
    "ON sandbox_balance_transactions (account_id, created_at, seq)",
]
