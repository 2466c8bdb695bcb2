-- The transaction `POST /v1/orders` commits, in plain SQL for pgbench (bench/orders.py):
-- idempotency lock + look-up, order, 3 lines, outbox event with its stream counter,
-- stored response. Variables: tenant, customer (-D), client_id (pgbench's); run with
-- -M prepared, so they are bind parameters.
\set n random(1, 1000000000)
BEGIN;
SELECT pg_try_advisory_xact_lock(hashtext('bench' || :client_id::text || '-' || :n::text));
SELECT 1 FROM idempotency_keys WHERE tenant_id = :tenant::uuid AND caller = 'bench' AND key = 'k' || :client_id::text || '-' || :n::text;
INSERT INTO orders (id, tenant_id, customer_id, currency, status, version, subtotal_minor, tax_minor, total_minor, placed_by, created_at, updated_at)
  VALUES (gen_random_uuid(), :tenant::uuid, :customer::uuid, 'EUR', 'placed', 1, 6000, 1200, 7200, 'bench', now(), now())
  RETURNING id \gset o_
INSERT INTO order_lines (id, tenant_id, order_id, line_no, sku, sku_id, product_id, name, unit, quantity, unit_price_minor, tax_code, tax_rate, net_minor, tax_minor, total_minor, price_rule)
  VALUES (gen_random_uuid(), :tenant::uuid, :o_id::uuid, 1, 'BENCH-1', gen_random_uuid(), gen_random_uuid(), 'Bench product 1', 'pc', 2, 1000, 'STD', 20, 2000, 400, 2400, '{"kind":"base"}'),
         (gen_random_uuid(), :tenant::uuid, :o_id::uuid, 2, 'BENCH-2', gen_random_uuid(), gen_random_uuid(), 'Bench product 2', 'pc', 1, 1250, 'STD', 20, 1250, 250, 1500, '{"kind":"base"}'),
         (gen_random_uuid(), :tenant::uuid, :o_id::uuid, 3, 'BENCH-3', gen_random_uuid(), gen_random_uuid(), 'Bench product 3', 'pc', 2, 1375, 'STD', 20, 2750, 550, 3300, '{"kind":"base"}');
WITH stream AS (
  INSERT INTO event_streams AS es (tenant_id, aggregate_type, aggregate_id, last_sequence)
  VALUES (:tenant::uuid, 'order', :o_id::uuid, 1)
  ON CONFLICT (tenant_id, aggregate_type, aggregate_id) DO UPDATE SET last_sequence = es.last_sequence + 1
  RETURNING last_sequence)
INSERT INTO events (id, tenant_id, type, version, aggregate_type, aggregate_id, sequence, occurred_at, payload)
  SELECT gen_random_uuid(), :tenant::uuid, 'order.created', 1, 'order', :o_id::uuid, stream.last_sequence, now(),
         '{"order_id": "x", "lines": [1, 2, 3]}'::jsonb FROM stream;
INSERT INTO idempotency_keys (tenant_id, caller, key, fingerprint, method, path, status, body, location, created_at, expires_at)
  VALUES (:tenant::uuid, 'bench', 'k' || :client_id::text || '-' || :n::text, repeat('a', 64), 'POST', '/v1/orders', 201, '{"id": "x"}', '/v1/orders/x', now(), now() + interval '1 day');
COMMIT;
