"""Events: the transactional outbox, subscribers, deliveries and attempts, consumptions, jobs.

Revision ID: events_0001
Revises: base_0001
"""

from alembic import op

from tradeflow.migrations.helpers import enable_tenant_rls, grant_app

revision = "events_0001"
down_revision = "base_0001"
branch_labels = ("events",)
depends_on = "identity_0001"


def upgrade() -> None:
    # UUIDv7 generated inside PostgreSQL (16 has no uuidv7()): the dispatcher creates
    # delivery rows in SQL, and their ids should sort by time like every other id.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION tradeflow_uuid7() RETURNS uuid
        LANGUAGE sql VOLATILE AS $$
          SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
            substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
            FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
        $$
        """
    )

    op.execute(
        """
        CREATE TABLE events (
          id uuid NOT NULL,
          position bigint GENERATED ALWAYS AS IDENTITY,
          tenant_id uuid NOT NULL,
          type varchar(100) NOT NULL,
          version integer NOT NULL DEFAULT 1,
          aggregate_type varchar(60) NOT NULL,
          aggregate_id varchar(100) NOT NULL,
          sequence bigint NOT NULL,
          occurred_at timestamptz NOT NULL DEFAULT now(),
          payload jsonb NOT NULL,
          target_subscriber_id uuid,
          dispatched_at timestamptz,
          CONSTRAINT pk_events PRIMARY KEY (id),
          CONSTRAINT fk_events_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT uq_events_stream_sequence
            UNIQUE (tenant_id, aggregate_type, aggregate_id, sequence)
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_events_undispatched ON events (position) WHERE dispatched_at IS NULL"
    )
    op.execute("CREATE INDEX ix_events_tenant_id_id ON events (tenant_id, id)")
    op.execute("CREATE INDEX ix_events_tenant_id_type_id ON events (tenant_id, type, id)")
    enable_tenant_rls("events")
    grant_app("events", "SELECT, INSERT")

    # Wake the workers when events commit. A statement trigger (not a call in
    # `publish`) keeps publishing one round trip; PostgreSQL folds identical
    # notifications of one transaction into one and delivers it on commit.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION tradeflow_events_notify() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_notify('tradeflow_work', 'e');
          RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER events_notify AFTER INSERT ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION tradeflow_events_notify()"
    )

    op.execute(
        """
        CREATE TABLE event_streams (
          tenant_id uuid NOT NULL,
          aggregate_type varchar(60) NOT NULL,
          aggregate_id varchar(100) NOT NULL,
          last_sequence bigint NOT NULL,
          CONSTRAINT pk_event_streams PRIMARY KEY (tenant_id, aggregate_type, aggregate_id),
          CONSTRAINT fk_event_streams_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE
        )
        """
    )
    enable_tenant_rls("event_streams")
    grant_app("event_streams", "SELECT, INSERT, UPDATE")

    op.execute(
        """
        CREATE TABLE subscribers (
          id uuid NOT NULL,
          tenant_id uuid,
          kind varchar(20) NOT NULL,
          name varchar(200) NOT NULL,
          event_types text[],
          enabled boolean NOT NULL DEFAULT true,
          paused boolean NOT NULL DEFAULT false,
          disabled_reason text,
          disabled_at timestamptz,
          max_in_flight integer,
          breaker_state varchar(10) NOT NULL DEFAULT 'closed',
          consecutive_failures integer NOT NULL DEFAULT 0,
          breaker_open_until timestamptz,
          breaker_trips integer NOT NULL DEFAULT 0,
          failing_since timestamptz,
          last_success_at timestamptz,
          last_failure_at timestamptz,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_subscribers PRIMARY KEY (id),
          CONSTRAINT fk_subscribers_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT ck_subscribers_breaker_state
            CHECK (breaker_state IN ('closed', 'open')),
          CONSTRAINT ck_subscribers_max_in_flight CHECK (max_in_flight IS NULL OR max_in_flight > 0)
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX uq_subscribers_system_kind_name ON subscribers (kind, name) "
        "WHERE tenant_id IS NULL"
    )
    op.execute("CREATE INDEX ix_subscribers_tenant_id ON subscribers (tenant_id)")
    enable_tenant_rls("subscribers")
    grant_app("subscribers", "SELECT, INSERT, UPDATE, DELETE")

    op.execute(
        """
        CREATE TABLE deliveries (
          id uuid NOT NULL DEFAULT tradeflow_uuid7(),
          tenant_id uuid NOT NULL,
          event_id uuid NOT NULL,
          subscriber_id uuid NOT NULL,
          event_type varchar(100) NOT NULL,
          aggregate varchar(170) NOT NULL,
          sequence bigint NOT NULL,
          status varchar(12) NOT NULL DEFAULT 'pending',
          attempts integer NOT NULL DEFAULT 0,
          claims integer NOT NULL DEFAULT 0,
          next_attempt_at timestamptz NOT NULL DEFAULT now(),
          leased_until timestamptz,
          lease_owner varchar(100),
          last_attempt_at timestamptz,
          last_status_code integer,
          last_error text,
          delivered_at timestamptz,
          dead_at timestamptz,
          created_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_deliveries PRIMARY KEY (id),
          CONSTRAINT fk_deliveries_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT fk_deliveries_event_id_events FOREIGN KEY (event_id)
            REFERENCES events (id) ON DELETE CASCADE,
          CONSTRAINT fk_deliveries_subscriber_id_subscribers FOREIGN KEY (subscriber_id)
            REFERENCES subscribers (id) ON DELETE CASCADE,
          CONSTRAINT uq_deliveries_event_id_subscriber_id UNIQUE (event_id, subscriber_id),
          CONSTRAINT ck_deliveries_status
            CHECK (status IN ('pending', 'delivered', 'dead', 'cancelled'))
        )
        """
    )
    # The claim walks each eligible subscriber's due work in time order ...
    op.execute(
        "CREATE INDEX ix_deliveries_due ON deliveries (subscriber_id, next_attempt_at) "
        "WHERE status = 'pending'"
    )
    # ... checks that nothing earlier of the same aggregate is still pending ...
    op.execute(
        "CREATE INDEX ix_deliveries_order ON deliveries (subscriber_id, aggregate, sequence) "
        "WHERE status = 'pending'"
    )
    # ... and counts what each subscriber has in flight.
    op.execute(
        "CREATE INDEX ix_deliveries_in_flight ON deliveries (subscriber_id, leased_until) "
        "WHERE leased_until IS NOT NULL"
    )
    op.execute("CREATE INDEX ix_deliveries_tenant_id_id ON deliveries (tenant_id, id)")
    op.execute("CREATE INDEX ix_deliveries_event_id ON deliveries (event_id)")
    op.execute(
        "CREATE INDEX ix_deliveries_dead ON deliveries (tenant_id, dead_at) WHERE status = 'dead'"
    )
    enable_tenant_rls("deliveries")
    grant_app("deliveries", "SELECT, INSERT, UPDATE")

    op.execute(
        """
        CREATE TABLE delivery_attempts (
          id uuid NOT NULL DEFAULT tradeflow_uuid7(),
          tenant_id uuid NOT NULL,
          delivery_id uuid NOT NULL,
          attempt integer NOT NULL,
          started_at timestamptz NOT NULL,
          duration_ms double precision NOT NULL,
          outcome varchar(20) NOT NULL,
          status_code integer,
          error text,
          response_body text,
          worker varchar(100),
          CONSTRAINT pk_delivery_attempts PRIMARY KEY (id),
          CONSTRAINT fk_delivery_attempts_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE,
          CONSTRAINT fk_delivery_attempts_delivery_id_deliveries FOREIGN KEY (delivery_id)
            REFERENCES deliveries (id) ON DELETE CASCADE
        )
        """
    )
    op.execute(
        "CREATE INDEX ix_delivery_attempts_delivery_id ON delivery_attempts (delivery_id, attempt)"
    )
    op.execute(
        "CREATE INDEX ix_delivery_attempts_tenant_id_id ON delivery_attempts (tenant_id, id)"
    )
    enable_tenant_rls("delivery_attempts")
    grant_app("delivery_attempts", "SELECT")

    op.execute(
        """
        CREATE TABLE event_consumptions (
          handler varchar(200) NOT NULL,
          event_id uuid NOT NULL,
          tenant_id uuid NOT NULL,
          consumed_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_event_consumptions PRIMARY KEY (handler, event_id),
          CONSTRAINT fk_event_consumptions_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE
        )
        """
    )
    enable_tenant_rls("event_consumptions")
    grant_app("event_consumptions", "SELECT, INSERT")

    op.execute(
        """
        CREATE TABLE delivery_policies (
          tenant_id uuid NOT NULL,
          retry_schedule integer[] NOT NULL,
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT pk_delivery_policies PRIMARY KEY (tenant_id),
          CONSTRAINT fk_delivery_policies_tenant_id_tenants FOREIGN KEY (tenant_id)
            REFERENCES tenants (id) ON DELETE CASCADE
        )
        """
    )
    enable_tenant_rls("delivery_policies")
    grant_app("delivery_policies", "SELECT, INSERT, UPDATE, DELETE")

    # Cluster-wide periodic jobs: not tenant data, so no RLS; tenants may read them.
    op.execute(
        """
        CREATE TABLE scheduled_jobs (
          name varchar(100) NOT NULL,
          cron varchar(100) NOT NULL,
          enabled boolean NOT NULL DEFAULT true,
          next_run_at timestamptz NOT NULL,
          running_until timestamptz,
          running_owner varchar(100),
          last_started_at timestamptz,
          last_finished_at timestamptz,
          last_status varchar(12),
          last_error text,
          last_duration_ms double precision,
          run_count bigint NOT NULL DEFAULT 0,
          failure_count bigint NOT NULL DEFAULT 0,
          CONSTRAINT pk_scheduled_jobs PRIMARY KEY (name)
        )
        """
    )
    grant_app("scheduled_jobs", "SELECT")


def downgrade() -> None:
    for table in (
        "scheduled_jobs",
        "delivery_policies",
        "event_consumptions",
        "delivery_attempts",
        "deliveries",
        "subscribers",
        "event_streams",
        "events",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("DROP FUNCTION IF EXISTS tradeflow_events_notify()")
    op.execute("DROP FUNCTION IF EXISTS tradeflow_uuid7()")
