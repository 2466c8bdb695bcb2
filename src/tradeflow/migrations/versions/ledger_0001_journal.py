"""Ledger: chart of accounts, journal entries and lines, balanced and immutable by the database.

Revision ID: ledger_0001
Revises: base_0001

The rules live here, in PostgreSQL, so that no code path — ours, a script, a
psql session — can write books that do not balance (docs/adr/0009):

* `ck_ledger_lines_*`: every line is a positive amount on exactly one side, in an
  ISO 4217 currency;
* `ledger_lines_sealed` (BEFORE INSERT on lines): a line joins only an entry created
  in the same transaction, in the same tenant and currency — an entry, once
  committed, can never gain lines;
* `ledger_entries_balanced` (a DEFERRABLE INITIALLY DEFERRED constraint trigger):
  at commit, every entry inserted in the transaction has at least two lines and
  its debits equal its credits;
* `ledger_*_immutable`: UPDATE and DELETE of entries and lines are refused
  (corrections are reversing entries); the application role is granted neither.
"""

from alembic import op

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "ledger_0001"
down_revision = "base_0001"
branch_labels = ("ledger",)
depends_on = "identity_0001"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ledger_accounts (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          code varchar(40) NOT NULL,
          name varchar(200) NOT NULL,
          type varchar(10) NOT NULL,
          normal_balance varchar(6) NOT NULL,
          system_key varchar(40),
          description varchar(500) NOT NULL DEFAULT '',
          created_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_ledger_accounts PRIMARY KEY (id),
          CONSTRAINT fk_ledger_accounts_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT uq_ledger_accounts_tenant_id_code UNIQUE (tenant_id, code),
          CONSTRAINT uq_ledger_accounts_tenant_id_system_key UNIQUE (tenant_id, system_key),
          CONSTRAINT uq_ledger_accounts_tenant_id_id UNIQUE (tenant_id, id),
          CONSTRAINT ck_ledger_accounts_type
            CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
          CONSTRAINT ck_ledger_accounts_normal_balance
            CHECK (normal_balance IN ('debit', 'credit')),
          CONSTRAINT ck_ledger_accounts_code CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9._:-]*$')
        )
        """
    )
    enable_tenant_rls("ledger_accounts")
    grant_app("ledger_accounts", "SELECT, INSERT")

    op.execute(
        """
        CREATE TABLE ledger_entries (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          kind varchar(10) NOT NULL,
          currency char(3) NOT NULL,
          description varchar(500) NOT NULL,
          source_event_id uuid,
          source_event_type varchar(100),
          reverses_entry_id uuid,
          refs jsonb NOT NULL DEFAULT '{}'::jsonb,
          occurred_at timestamptz NOT NULL,
          posted_at timestamptz NOT NULL DEFAULT now(),
          posted_by varchar(80),
          txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
          CONSTRAINT pk_ledger_entries PRIMARY KEY (id),
          CONSTRAINT fk_ledger_entries_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT uq_ledger_entries_tenant_id_id UNIQUE (tenant_id, id),
          -- The exactly-once key: one entry per source event.
          CONSTRAINT uq_ledger_entries_tenant_id_source_event_id
            UNIQUE (tenant_id, source_event_id),
          -- An entry is reversed at most once.
          CONSTRAINT uq_ledger_entries_reverses_entry_id UNIQUE (reverses_entry_id),
          CONSTRAINT fk_ledger_entries_reverses_entry_id_ledger_entries
            FOREIGN KEY (tenant_id, reverses_entry_id) REFERENCES ledger_entries (tenant_id, id),
          CONSTRAINT ck_ledger_entries_kind CHECK (kind IN ('event', 'reversal', 'manual')),
          CONSTRAINT ck_ledger_entries_currency CHECK (currency ~ '^[A-Z]{3}$'),
          CONSTRAINT ck_ledger_entries_event_source
            CHECK ((kind = 'event') = (source_event_id IS NOT NULL AND source_event_type IS NOT NULL)),
          CONSTRAINT ck_ledger_entries_reversal_source
            CHECK ((kind = 'reversal') = (reverses_entry_id IS NOT NULL))
        )
        """
    )
    op.execute("CREATE INDEX ix_ledger_entries_tenant_id_id ON ledger_entries (tenant_id, id)")
    op.execute(
        "CREATE INDEX ix_ledger_entries_tenant_id_posted_at ON ledger_entries (tenant_id, posted_at)"
    )
    # Entries by the documents they book (`refs @> {"invoice_id": …}`): filters, and the
    # customer of an invoice for postings whose event does not carry it.
    op.execute(
        "CREATE INDEX ix_ledger_entries_refs ON ledger_entries USING gin (refs jsonb_path_ops)"
    )
    enable_tenant_rls("ledger_entries")
    grant_app("ledger_entries", "SELECT, INSERT")

    op.execute(
        """
        CREATE TABLE ledger_lines (
          id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          entry_id uuid NOT NULL,
          line_no smallint NOT NULL,
          account_id uuid NOT NULL,
          currency char(3) NOT NULL,
          debit_minor bigint NOT NULL DEFAULT 0,
          credit_minor bigint NOT NULL DEFAULT 0,
          customer_id uuid,
          memo varchar(500),
          posted_at timestamptz NOT NULL,
          CONSTRAINT pk_ledger_lines PRIMARY KEY (id),
          CONSTRAINT fk_ledger_lines_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT fk_ledger_lines_entry_id_ledger_entries FOREIGN KEY (tenant_id, entry_id)
            REFERENCES ledger_entries (tenant_id, id),
          CONSTRAINT fk_ledger_lines_account_id_ledger_accounts FOREIGN KEY (tenant_id, account_id)
            REFERENCES ledger_accounts (tenant_id, id),
          CONSTRAINT uq_ledger_lines_entry_id_line_no UNIQUE (entry_id, line_no),
          CONSTRAINT ck_ledger_lines_not_negative CHECK (debit_minor >= 0 AND credit_minor >= 0),
          CONSTRAINT ck_ledger_lines_one_side CHECK ((debit_minor > 0) <> (credit_minor > 0)),
          CONSTRAINT ck_ledger_lines_currency CHECK (currency ~ '^[A-Z]{3}$')
        )
        """
    )
    # Statements, opening balances and the trial balance are index range scans / index-only
    # scans over this one index.
    op.execute(
        "CREATE INDEX ix_ledger_lines_account ON ledger_lines "
        "(tenant_id, account_id, currency, posted_at, id) INCLUDE (debit_minor, credit_minor)"
    )
    op.execute(
        "CREATE INDEX ix_ledger_lines_customer ON ledger_lines "
        "(tenant_id, customer_id, account_id, currency) INCLUDE (debit_minor, credit_minor, posted_at) "
        "WHERE customer_id IS NOT NULL"
    )
    enable_tenant_rls("ledger_lines")
    grant_app("ledger_lines", "SELECT, INSERT")

    # -- immutability -----------------------------------------------------------------------
    # `tradeflow.ledger_purge = on` (set by an operator deleting a whole tenant) is the one
    # way past; the application role holds no UPDATE or DELETE grant in any case.
    op.execute(
        """
        CREATE FUNCTION ledger_reject_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'DELETE' AND current_setting('tradeflow.ledger_purge', true) = 'on' THEN
            RETURN OLD;
          END IF;
          RAISE EXCEPTION 'ledger rows are immutable: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'TF101',
                  HINT = 'Correct a posted entry with a reversing entry.';
        END $$
        """
    )
    for table in ("ledger_entries", "ledger_lines"):
        op.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_reject_change()"
        )

    # -- a line joins only an entry of its own transaction ------------------------------------
    # SECURITY DEFINER: the check must see the entry whatever RLS would hide, so a line
    # pointing at another tenant's entry is named as such rather than "not found".
    op.execute(
        """
        CREATE FUNCTION ledger_line_seal() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
        DECLARE
          e record;
        BEGIN
          SELECT tenant_id, currency, posted_at, txid INTO e
            FROM ledger_entries WHERE id = NEW.entry_id;
          IF NOT FOUND THEN
            RAISE EXCEPTION 'ledger entry % does not exist', NEW.entry_id
              USING ERRCODE = 'foreign_key_violation';
          END IF;
          IF e.txid <> pg_current_xact_id() THEN
            RAISE EXCEPTION 'ledger entry % is sealed: lines are added only when it is posted',
              NEW.entry_id USING ERRCODE = 'TF103';
          END IF;
          IF e.tenant_id <> NEW.tenant_id OR e.currency <> NEW.currency THEN
            RAISE EXCEPTION 'ledger line of entry % must match its tenant and currency (%)',
              NEW.entry_id, e.currency USING ERRCODE = 'TF104';
          END IF;
          NEW.posted_at := e.posted_at;
          RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER ledger_lines_sealed BEFORE INSERT ON ledger_lines "
        "FOR EACH ROW EXECUTE FUNCTION ledger_line_seal()"
    )
    # txid is the transaction's, whatever the INSERT said: otherwise a crafted value could
    # keep an entry open for a later transaction.
    op.execute(
        """
        CREATE FUNCTION ledger_entry_stamp() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          NEW.txid := pg_current_xact_id();
          RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER ledger_entries_stamp BEFORE INSERT ON ledger_entries "
        "FOR EACH ROW EXECUTE FUNCTION ledger_entry_stamp()"
    )

    # -- balance, checked at commit -----------------------------------------------------------
    op.execute(
        """
        CREATE FUNCTION ledger_check_balanced() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
        DECLARE
          n integer;
          debits numeric;
          credits numeric;
        BEGIN
          SELECT count(*), coalesce(sum(debit_minor), 0), coalesce(sum(credit_minor), 0)
            INTO n, debits, credits
            FROM ledger_lines WHERE entry_id = NEW.id;
          IF n < 2 OR debits <> credits THEN
            RAISE EXCEPTION 'ledger entry % is unbalanced: debits % <> credits % over % line(s)',
              NEW.id, debits, credits, n
              USING ERRCODE = 'TF102',
                    HINT = 'An entry needs two or more lines whose debits equal their credits.';
          END IF;
          RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced()"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS ledger_lines CASCADE")
    op.execute("DROP TABLE IF EXISTS ledger_entries CASCADE")
    op.execute("DROP TABLE IF EXISTS ledger_accounts CASCADE")
    for fn in (
        "ledger_check_balanced",
        "ledger_entry_stamp",
        "ledger_line_seal",
        "ledger_reject_change",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}()")
