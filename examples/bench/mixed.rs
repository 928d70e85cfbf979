//! The billing account of the benchmark: `n` customers, `n` invoices of two lines (one in 50 with
//! 40, more than Stripe embeds, so its lines come from the child endpoint), `n` charges, `n`
//! payment intents and `n / 10` refunds, synced in full by one job.
//!
//! Run in one process, so the box's speed of the day cancels out: a customers-only backfill of `n`
//! at 0 ms (the reference), the billing account at 0 ms, then at 150 ms of provider latency with a
//! budget of 100 requests a second that the fake enforces as Stripe's rate limit. For each:
//! objects/s, list pages and child requests, pages/s against the budget, 429s and peak memory.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::{Counts, FakeStripe, StripeData};

use super::{fresh_database, full_sync, memory_kib, start_daemon, RPS};

/// The billing resources a mixed job syncs.
const RESOURCES: [&str; 5] = ["customer", "invoice", "charge", "payment_intent", "refund"];

/// The list paths of those resources, to tell list pages from child requests.
const LISTS: [&str; 5] = [
    "/v1/customers",
    "/v1/invoices",
    "/v1/charges",
    "/v1/payment_intents",
    "/v1/refunds",
];

fn billing(n: usize) -> Counts {
    Counts {
        customers: n,
        products: 5,
        prices_per_product: 2,
        subscriptions: 0,
        invoices: n,
        lines_per_invoice: 2,
        long_invoice_every: 50,
        long_invoice_lines: 40,
        charges: n,
        payment_intents: n,
        refunds: n / 10,
        ..Counts::default()
    }
}

/// `n` customers, one product and its price: the customers-only reference.
pub(super) fn customers_only(n: usize) -> Counts {
    Counts {
        customers: n,
        products: 1,
        prices_per_product: 1,
        subscriptions: 0,
        ..Counts::default()
    }
}

/// One full sync of `counts` at `latency_ms`, with a budget of `rps` (0: none).
async fn run_one(
    admin_url: &str,
    name: &str,
    counts: &Counts,
    resources: &[&str],
    latency_ms: u64,
    rps: u64,
) -> Value {
    let dir = std::env::temp_dir().join(format!("supasaasy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = StripeData::generate(counts);
    let fake = FakeStripe::start(data).await;
    fake.set_latency(Duration::from_millis(latency_ms));
    RPS.store(rps, Ordering::Relaxed);
    if rps > 0 {
        fake.set_rate_limit(Some(rps as f64));
    }
    let expected = resources.iter().map(|r| fake.count(r)).sum::<usize>();
    let db_url = fresh_database(admin_url, &format!("bench_{name}")).await;
    let daemon = start_daemon(&db_url, &fake, &dir);
    let pid = daemon.child.id();
    let (doc, seconds, quarters) = full_sync(&daemon, resources, expected).await;
    let (_, peak) = memory_kib(pid);
    let pages: u64 = LISTS
        .iter()
        .map(|p| fake.requests_to(p) - fake.requests_to(&format!("{p}/")))
        .sum();
    let children: u64 = LISTS
        .iter()
        .map(|p| fake.requests_to(&format!("{p}/")))
        .sum();
    let objects = doc["processed_entities"].as_f64().unwrap_or(0.0);
    let result = json!({
        "run": name,
        "latency_ms": latency_ms,
        "requests_per_second_budget": rps,
        "status": doc["status"],
        "objects": doc["processed_entities"],
        "seconds": (seconds * 10.0).round() / 10.0,
        "objects_per_second": (objects / seconds).round(),
        "list_pages": pages,
        "child_requests": children,
        "pages_as_objects_per_second": (pages as f64 * 100.0 / seconds).round(),
        "requests_per_second": ((pages + children) as f64 / seconds * 10.0).round() / 10.0,
        "answered_429": fake.rate_limited(),
        "peak_rss_mib": peak / 1024,
        "rss_mib_at_quarters": quarters,
    });
    eprintln!("mixed {result}");
    result
}

/// The three runs, in this order.
pub async fn run(admin_url: &str, n: usize) -> Value {
    let reference = run_one(
        admin_url,
        "customers_0ms",
        &customers_only(n),
        &["customer"],
        0,
        0,
    )
    .await;
    let fast = run_one(admin_url, "billing_0ms", &billing(n), &RESOURCES, 0, 0).await;
    let slow = run_one(
        admin_url,
        "billing_150ms",
        &billing(n),
        &RESOURCES,
        150,
        100,
    )
    .await;
    let ratio = fast["objects_per_second"].as_f64().unwrap_or(0.0)
        / reference["objects_per_second"]
            .as_f64()
            .unwrap_or(1.0)
            .max(1.0);
    let budget_share = slow["requests_per_second"].as_f64().unwrap_or(0.0) / 100.0;
    json!({
        "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        "n": n,
        "runs": [reference, fast, slow],
        "billing_0ms_against_customers_0ms": (ratio * 100.0).round() / 100.0,
        "billing_150ms_share_of_budget": (budget_share * 100.0).round() / 100.0,
    })
}
