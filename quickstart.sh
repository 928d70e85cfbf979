#!/usr/bin/env bash
# The whole thing on one machine: a throwaway Postgres (unless DATABASE_URL is set), a local fake
# Stripe seeded with fixture-shaped data, and `supasaasy serve` with this repo's supasaasy.toml.
# Triggers a full sync with curl, waits for the job, prints its status and a few mirrored rows
# (customers, subscriptions, invoices with their lines, charges, payment intents), and cleans up
# after itself.
set -euo pipefail
cd "$(dirname "$0")"

echo "==> building"
cargo build --quiet --bin supasaasy --example fake_stripe --example throwaway_postgres
bin=target/debug
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Waits until file $1 holds "$2<value>" and prints the value (up to the next space).
await_line() {
    for _ in $(seq 1 300); do
        if found=$(grep -m1 -o "$2[^ ]*" "$1" 2>/dev/null); then
            echo "${found#"$2"}"
            return 0
        fi
        sleep 0.1
    done
    echo "gave up waiting for $2 in $1:" >&2
    cat "$1" >&2
    return 1
}

if [ -z "${DATABASE_URL:-}" ]; then
    echo "==> starting a throwaway Postgres"
    "$bin/examples/throwaway_postgres" >"$work/pg.out" 2>"$work/pg.err" &
    pids+=($!)
    DATABASE_URL=$(await_line "$work/pg.out" "DATABASE_URL=")
    export DATABASE_URL
fi

echo "==> starting a fake Stripe"
"$bin/examples/fake_stripe" --customers 250 --products 6 --subscriptions 180 --items 2 \
    --invoices 300 --charges 300 --payment-intents 300 --refunds 30 \
    --api-key sk_test_quickstart >"$work/fake.out" 2>"$work/fake.err" &
pids+=($!)
STRIPE_BASE_URL=$(await_line "$work/fake.out" "STRIPE_BASE_URL=")
export STRIPE_BASE_URL STRIPE_API_KEY=sk_test_quickstart ADMIN_API_KEY=quickstart-admin-key

echo "==> starting supasaasy serve (fake Stripe at $STRIPE_BASE_URL)"
"$bin/supasaasy" --config supasaasy.toml serve --listen 127.0.0.1:0 2>"$work/serve.log" &
serve=$!
pids+=("$serve")
addr=$(await_line "$work/serve.log" "supasaasy listening addr=")
api="http://$addr"
# Listening comes first; ready once the database is migrated.
for _ in $(seq 1 300); do
    curl -fsS "$api/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
echo "==> GET $api/readyz"
curl -fsS "$api/readyz"
echo

echo "==> POST $api/sync"
answer=$(curl -fsS -X POST "$api/sync" -H "Authorization: Bearer $ADMIN_API_KEY" \
    -H 'Content-Type: application/json' -d '{"app_key": "stripe_prod", "mode": "full"}')
echo "$answer"
job_id=$(echo "$answer" | sed -E 's/.*"job_id":"([^"]+)".*/\1/')

status=pending
for _ in $(seq 1 600); do
    status=$(curl -fsS "$api/jobs/$job_id" -H "Authorization: Bearer $ADMIN_API_KEY" |
        grep -o '"status":"[a-z]*"' | cut -d'"' -f4)
    case "$status" in completed|failed|cancelled) break ;; esac
    sleep 0.2
done
doc=$(curl -fsS "$api/jobs/$job_id?include_tasks=true" -H "Authorization: Bearer $ADMIN_API_KEY")
echo "==> GET $api/jobs/$job_id"
echo "$doc" | python3 -m json.tool 2>/dev/null || echo "$doc"

echo "==> a few rows of supasaasy.stripe_customers"
psql "$DATABASE_URL" -X -q -c \
    "SELECT external_id, email, name, created FROM supasaasy.stripe_customers ORDER BY created DESC LIMIT 5"
echo "==> a few rows of supasaasy.stripe_subscriptions"
psql "$DATABASE_URL" -X -q -c \
    "SELECT external_id, customer_id, status, current_period_end FROM supasaasy.stripe_subscriptions ORDER BY created DESC LIMIT 5"
psql "$DATABASE_URL" -X -q -c \
    "SELECT status, count(*) FROM supasaasy.stripe_subscriptions GROUP BY status ORDER BY 2 DESC"
echo "==> a few rows of supasaasy.stripe_invoices, with their lines"
psql "$DATABASE_URL" -X -q -c \
    "SELECT i.external_id, i.customer_id, i.status, i.currency, i.amount_due, i.amount_paid,
            count(l.external_id) AS lines
       FROM supasaasy.stripe_invoices i
       LEFT JOIN supasaasy.stripe_invoice_line_items l ON l.invoice_id = i.external_id
      GROUP BY 1, 2, 3, 4, 5, 6, i.created ORDER BY i.created DESC LIMIT 5"
echo "==> a few rows of supasaasy.stripe_charges and supasaasy.stripe_payment_intents"
psql "$DATABASE_URL" -X -q -c \
    "SELECT external_id, customer_id, status, amount, currency, payment_intent_id
       FROM supasaasy.stripe_charges ORDER BY created DESC LIMIT 5"
psql "$DATABASE_URL" -X -q -c \
    "SELECT status, count(*), sum(amount) AS amount FROM supasaasy.stripe_payment_intents
      GROUP BY status ORDER BY 2 DESC"

kill -TERM "$serve"
wait "$serve"
echo "==> job $status; supasaasy stopped cleanly"
[ "$status" = completed ]
