-- The transaction `POST /v1/orders` commits, in plain SQL for pgbench (bench/orders.py), in the
-- statement shapes the API sends: idempotency lock + look-up (one statement), the order with
-- its 3 lines (one statement), the outbox event with its stream counter, the stored response
-- (an insert over an expired copy). The API's reads (tax rates, pricing version, customer)
-- are left out. Variables: tenant, customer (-D), client_id (pgbench's); run with
-- -M prepared, so they are bind parameters.
\set n random(1, 1000000000)
BEGIN;
SELECT l.got, k.fingerprint
  FROM (SELECT pg_try_advisory_xact_lock(hashtext('bench' || :client_id::text || '-' || :n::text)) AS got) AS l
  LEFT JOIN LATERAL (SELECT fingerprint FROM idempotency_keys
                     WHERE l.got AND tenant_id = :tenant::uuid AND caller = 'bench'
                       AND key = 'k' || :client_id::text || '-' || :n::text) AS k ON true;
WITH o AS (
  INSERT INTO orders (id, tenant_id, customer_id, currency, status, version, subtotal_minor, tax_minor, total_minor, placed_by, created_at, updated_at)
  VALUES (gen_random_uuid(), :tenant::uuid, :customer::uuid, 'EUR', 'placed', 1, 6000, 1200, 7200, 'bench', now(), now())
  RETURNING id, tenant_id),
lines AS (
INSERT INTO order_lines (tenant_id, order_id, id, line_no, sku, sku_id, product_id, name, unit, quantity, unit_price_minor, tax_code, tax_rate, net_minor, tax_minor, total_minor, price_rule)
  SELECT o.tenant_id, o.id, gen_random_uuid(), l.line_no, l.sku, gen_random_uuid(), gen_random_uuid(), l.name, 'pc', l.quantity, l.unit_price, 'STD', 20, l.net, l.tax, l.net + l.tax, '{"kind":"base"}'
  FROM o, (VALUES (1, 'BENCH-1', 'Bench product 1', 2, 1000, 2000, 400),
                  (2, 'BENCH-2', 'Bench product 2', 1, 1250, 1250, 250),
                  (3, 'BENCH-3', 'Bench product 3', 2, 1375, 2750, 550))
       AS l(line_no, sku, name, quantity, unit_price, net, tax)
  RETURNING 1)
SELECT id FROM o \gset o_
WITH stream AS (
  INSERT INTO event_streams AS es (tenant_id, aggregate_type, aggregate_id, last_sequence)
  VALUES (:tenant::uuid, 'order', :o_id::text, 1)
  ON CONFLICT (tenant_id, aggregate_type, aggregate_id) DO UPDATE SET last_sequence = es.last_sequence + 1
  RETURNING last_sequence)
INSERT INTO events (id, tenant_id, type, version, aggregate_type, aggregate_id, sequence, occurred_at, payload)
  SELECT gen_random_uuid(), :tenant::uuid, 'order.created', 1, 'order', :o_id::text, stream.last_sequence, now(),
         '{"order_id": "x", "lines": [1, 2, 3]}'::jsonb FROM stream;
INSERT INTO idempotency_keys AS k (tenant_id, caller, key, fingerprint, method, path, status, body, location, etag, created_at, expires_at)
  VALUES (:tenant::uuid, 'bench', 'k' || :client_id::text || '-' || :n::text, repeat('a', 64), 'POST', '/v1/orders', 201, '{"id": "x"}', '/v1/orders/x', '"1"', now(), now() + interval '1 day')
  ON CONFLICT (tenant_id, caller, key) DO UPDATE SET body = EXCLUDED.body WHERE k.expires_at <= EXCLUDED.created_at
  RETURNING 1;
COMMIT;
