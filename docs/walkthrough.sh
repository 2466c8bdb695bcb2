#!/usr/bin/env bash
# Order to cash with curl, against a running `tradeflow up --demo` — the README's walkthrough,
# with every answer checked.
#
#   docs/walkthrough.sh CREDENTIALS_FILE [BASE_URL]
#   docs/walkthrough.sh var/demo-credentials.json http://127.0.0.1:8000
#
# BASE_URL defaults to the file's `base_url`. Needs bash, curl and python3 (for JSON and a
# tiny webhook receiver on 127.0.0.1, so start Tradeflow with
# TRADEFLOW_WEBHOOKS_ALLOW_PRIVATE=true). A buyer quotes, orders twice (one order under the
# spending limit, one over it that an approver approves), the seller confirms both (invoices),
# the buyer pays both through the sandbox processor; the script then checks the events and
# their deliveries to the webhook receiver. Exits non-zero at the first step that fails or if
# an order does not end `paid`.
set -euo pipefail
shopt -s inherit_errexit

if [[ $# -lt 1 || $# -gt 2 ]]; then
  echo "usage: $0 CREDENTIALS_FILE [BASE_URL]" >&2
  exit 2
fi
CREDS=$1
WAIT_SECONDS=${WALKTHROUGH_WAIT_SECONDS:-30}

WORK=$(mktemp -d)
SINK_PID=
cleanup() {
  if [[ -n $SINK_PID ]]; then kill "$SINK_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# jget PATH: print the value at a dotted path (`items.0.id`) of the JSON on stdin.
jget() {
  python3 -c '
import json, sys
d = json.load(sys.stdin)
for k in filter(None, sys.argv[1].split(".")):
    d = d[int(k)] if isinstance(d, list) else d[k]
print(d if isinstance(d, str) else json.dumps(d))' "$1"
}

fail() {
  echo "FAILED: $*" >&2
  exit 1
}

# call STATUSES METHOD PATH [curl options…]: the response body on stdout, the headers in
# $WORK/headers; any status not in STATUSES (e.g. "201 202") fails the script.
call() {
  local want=$1 method=$2 path=$3 got
  shift 3
  got=$(curl -sS -X "$method" -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' \
    "$API$path" "$@") || true
  if [[ " $want " != *" $got "* ]]; then
    echo "FAILED: $method $path answered ${got:-nothing}, expected $want:" >&2
    cat "$WORK/body" >&2 2>/dev/null || true
    echo >&2
    exit 1
  fi
  cat "$WORK/body"
}

header() { # header NAME: a header of the last call's response
  python3 -c '
import sys
name = sys.argv[1].lower() + ":"
for line in open(sys.argv[2], encoding="latin-1"):
    if line.lower().startswith(name):
        print(line.split(":", 1)[1].strip())' "$1" "$WORK/headers"
}

expect() { # expect WHAT ACTUAL WANTED
  [[ $2 == "$3" ]] || fail "$1 is '$2', expected '$3'"
}

step() { printf '\n== %s\n' "$*"; }

API=${2:-$(jget base_url <"$CREDS")}
API=${API%/}
STAFF="Authorization: Bearer $(jget api_key <"$CREDS")"
CUSTOMER=$(jget customer_id <"$CREDS")
CURRENCY=$(jget currency <"$CREDS")
JSON='Content-Type: application/json'
RUN=$(date +%s)-$$ # makes this run's Idempotency-Keys unique

step "Tradeflow at $API is ready"
call 200 GET /readyz >/dev/null

step "A webhook receiver on 127.0.0.1, registered for order, invoice and payment events"
python3 -c '
import http.server, pathlib, sys
work = pathlib.Path(sys.argv[1])
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(work / "hooks.jsonl", "ab") as f:
            f.write(body + b"\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Sink)
(work / "sink.port.tmp").write_text(str(server.server_port))
(work / "sink.port.tmp").rename(work / "sink.port")
server.serve_forever()' "$WORK" &
SINK_PID=$!
for _ in $(seq 1 100); do
  [[ -f $WORK/sink.port ]] && break
  sleep 0.1
done
[[ -f $WORK/sink.port ]] || fail "the webhook receiver did not start"
SINK="http://127.0.0.1:$(cat "$WORK/sink.port")/hooks"
: >"$WORK/hooks.jsonl"
ENDPOINT=$(call 201 POST /v1/webhook-endpoints -H "$STAFF" -H "$JSON" \
  -d '{"url": "'"$SINK"'", "description": "walkthrough",
       "event_types": ["order.*", "invoice.*", "payment.*"]}' | jget id)
echo "endpoint $ENDPOINT -> $SINK"

step "The buyer signs in"
BUYER_LOGIN=$(python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))
print(json.dumps({"email": c["buyer_email"], "password": c["buyer_password"]}))' "$CREDS")
BUYER="Authorization: Bearer $(call 200 POST /v1/auth/login -H "$JSON" -d "$BUYER_LOGIN" |
  jget access_token)"

step "The buyer's prices, and the rule that set each"
for q in "BOLT-M8-40&quantity=10" "NUT-M8&quantity=20" "DRILL-18V&quantity=3"; do
  call 200 GET "/v1/prices/quote?sku=$q" -H "$BUYER" | python3 -c '
import json, sys
q = json.load(sys.stdin)
print("%(sku)s x %(quantity)s: %(unit_price_minor)s each (%(currency)s minor units)" % q,
      "by %(kind)s, %(name)s" % q["rule"])'
done

step "Order 1, under the buyer's 500.00 spending limit: placed"
ORDER1_BODY='{"customer_id": "'"$CUSTOMER"'", "currency": "'"$CURRENCY"'", "reference": "PO-1001",
  "lines": [{"sku": "BOLT-M8-40", "quantity": 10}, {"sku": "NUT-M8", "quantity": 20}]}'
ORDER1_JSON=$(call 201 POST /v1/orders -H "$BUYER" -H "$JSON" \
  -H "Idempotency-Key: po-1001-$RUN" -d "$ORDER1_BODY")
ORDER1=$(jget id <<<"$ORDER1_JSON")
expect "order 1 status" "$(jget status <<<"$ORDER1_JSON")" placed
expect "order 1 ETag" "$(header ETag)" '"1"'
echo "order $ORDER1: placed, total $(jget total_minor <<<"$ORDER1_JSON")"

step "The same request again (a retry): the stored answer, no second order"
REPLAY=$(call 201 POST /v1/orders -H "$BUYER" -H "$JSON" \
  -H "Idempotency-Key: po-1001-$RUN" -d "$ORDER1_BODY")
expect "replayed order id" "$(jget id <<<"$REPLAY")" "$ORDER1"
expect "Idempotent-Replayed" "$(header Idempotent-Replayed)" true

step "Order 2, over the spending limit: pending_approval"
ORDER2_JSON=$(call 201 POST /v1/orders -H "$BUYER" -H "$JSON" \
  -H "Idempotency-Key: po-1002-$RUN" -d '{"customer_id": "'"$CUSTOMER"'",
  "currency": "'"$CURRENCY"'", "reference": "PO-1002",
  "lines": [{"sku": "DRILL-18V", "quantity": 3}]}')
ORDER2=$(jget id <<<"$ORDER2_JSON")
expect "order 2 status" "$(jget status <<<"$ORDER2_JSON")" pending_approval
echo "order $ORDER2: pending_approval, total $(jget total_minor <<<"$ORDER2_JSON")"

step "The company's approver approves order 2 (If-Match: its ETag)"
APPROVER_LOGIN=$(python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))
print(json.dumps({"email": c["approver_email"], "password": c["approver_password"]}))' "$CREDS")
APPROVER="Authorization: Bearer $(call 200 POST /v1/auth/login -H "$JSON" \
  -d "$APPROVER_LOGIN" | jget access_token)"
call 200 GET "/v1/orders/$ORDER2" -H "$APPROVER" >/dev/null
ETAG=$(header ETag)
APPROVED=$(call 200 POST "/v1/orders/$ORDER2/approve" -H "$APPROVER" -H "If-Match: $ETAG")
expect "order 2 status" "$(jget status <<<"$APPROVED")" approved

step "The seller confirms both orders: credit check, then the invoice"
declare -A INVOICE
for order in "$ORDER1" "$ORDER2"; do
  call 200 GET "/v1/orders/$order" -H "$STAFF" >/dev/null
  ETAG=$(header ETag)
  CONFIRMED=$(call 200 POST "/v1/orders/$order/confirm" -H "$STAFF" -H "If-Match: $ETAG")
  expect "order $order status" "$(jget status <<<"$CONFIRMED")" invoiced
  INVOICE[$order]=$(jget invoice_id <<<"$CONFIRMED")
  echo "order $order: invoiced, invoice ${INVOICE[$order]}"
done

step "The buyer reads invoice 1: JSON, PDF and HTML"
INV=$(call 200 GET "/v1/invoices/${INVOICE[$ORDER1]}" -H "$BUYER")
expect "invoice status" "$(jget status <<<"$INV")" open
python3 -c 'import json, sys; i = json.load(sys.stdin)
print(i["number"], "total", i["total_minor"], "due", i["amount_due_minor"], "by", i["due_date"])' \
  <<<"$INV"
call 200 GET "$(jget pdf_url <<<"$INV")" -H "$BUYER" >"$WORK/invoice.pdf"
expect "PDF content type" "$(header Content-Type)" application/pdf
expect "PDF signature" "$(head -c 5 "$WORK/invoice.pdf")" %PDF-
call 200 GET "$(jget html_url <<<"$INV")" -H "$BUYER" | grep -q "$(jget number <<<"$INV")" ||
  fail "the HTML invoice does not show its number"
echo "PDF $(wc -c <"$WORK/invoice.pdf") bytes, HTML ok"

step "The buyer pays both invoices through the sandbox processor"
for order in "$ORDER1" "$ORDER2"; do
  PAYMENT=$(call "201 202" POST /v1/payments -H "$BUYER" -H "$JSON" \
    -H "Idempotency-Key: pay-$order-$RUN" \
    -d '{"invoice_id": "'"${INVOICE[$order]}"'", "payment_method": "pm_sandbox_ok"}')
  status=$(jget status <<<"$PAYMENT")
  [[ $status == captured || $status == processing ]] || fail "payment status is '$status'"
  echo "payment $(jget id <<<"$PAYMENT"): $status $(jget amount_minor <<<"$PAYMENT")"
done

step "Both orders end paid"
for order in "$ORDER1" "$ORDER2"; do
  status=
  for _ in $(seq 1 $((WAIT_SECONDS * 2))); do
    status=$(call 200 GET "/v1/orders/$order" -H "$BUYER" | jget status)
    [[ $status == paid ]] && break
    sleep 0.5
  done
  expect "order $order status after ${WAIT_SECONDS}s" "$status" paid
  echo "order $order: paid"
done
expect "invoice 1 status" \
  "$(call 200 GET "/v1/invoices/${INVOICE[$ORDER1]}" -H "$BUYER" | jget status)" paid

step "Order 2's events, oldest first"
TYPES=$(call 200 GET "/v1/events?aggregate_type=order&aggregate_id=$ORDER2" -H "$STAFF" |
  python3 -c 'import json, sys
print(" ".join(e["type"] for e in reversed(json.load(sys.stdin)["items"])))')
echo "$TYPES"
expect "order 2's events" "$TYPES" \
  "order.created order.approval_requested order.approved order.confirmed order.invoiced order.paid"

step "Their deliveries to the webhook receiver"
WANTED="order.created order.approval_requested order.approved order.confirmed invoice.issued
  order.invoiced payment.intent_created payment.captured order.paid"
# delivered [--explain]: every delivery to the endpoint done, each wanted type among them,
# and the receiver holds order.paid for both orders.
delivered() {
  python3 -c '
import json, sys
explain, deliveries, hooks, wanted, orders = sys.argv[1] == "--explain", *sys.argv[2:5], sys.argv[5:]
items = json.load(open(deliveries))["items"]
done = {d["event_type"] for d in items if d["status"] == "delivered"}
received = [json.loads(line) for line in open(hooks) if line.strip()]
paid = {h["data"].get("order_id") for h in received if h["type"] == "order.paid"}
problems = [f"no delivered {t}" for t in sorted(set(wanted.split()) - done)]
problems += ["%(event_type)s is %(status)s" % d for d in items if d["status"] != "delivered"]
problems += [f"order.paid of {o} not received" for o in orders if o not in paid]
if explain:
    for d in reversed(items):
        print(d["event_type"], d["status"], "HTTP", d["last_status_code"], "attempts", d["attempts"])
    print(len(items), "deliveries,", len(received), "webhooks received")
    if problems:
        print("FAILED:", "; ".join(problems), file=sys.stderr)
sys.exit(1 if problems else 0)' "${1:-}" "$WORK/deliveries" "$WORK/hooks.jsonl" "$WANTED" \
    "$ORDER1" "$ORDER2"
}
for _ in $(seq 1 $((WAIT_SECONDS * 2))); do
  call 200 GET "/v1/deliveries?endpoint_id=$ENDPOINT&limit=200" -H "$STAFF" >"$WORK/deliveries"
  delivered quiet && break
  sleep 0.5
done
delivered --explain

printf '\nOrder to cash: both orders paid, every step an event delivered to the webhook.\n'
