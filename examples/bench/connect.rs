//! The Connect platform of the benchmark: 50 connected accounts of `small` customers each, one of
//! `large`, and the platform's own `small`, synced in full by one job at 150 ms of provider
//! latency with a budget of 100 requests a second that the fake enforces as Stripe's rate limit.
//!
//! Reports objects/s, requests/s against the budget's ceiling, 429s, peak memory, and fairness:
//! when the last small account completed, and how far the large one was then.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::{FakeStripe, StripeData};

use super::mixed::customers_only as customers;
use super::{fresh_database, memory_kib, start_daemon, start_full_job, ADMIN_KEY, CONNECT, RPS};

const LARGE: &str = "acct_benchlarge00000";
const SMALL_ACCOUNTS: u64 = 50;
const LATENCY_MS: u64 = 150;
const BUDGET: u64 = 100;

/// The platform and its 51 accounts, each from its own seed (ids do not repeat).
fn platform(small: usize, large: usize) -> StripeData {
    let at = chrono::Utc::now().timestamp() - 86_400;
    let mut data = StripeData::generate_at(&customers(small), at);
    for seed in 1..=SMALL_ACCOUNTS {
        let account = StripeData::generate_seeded_at(&customers(small), seed, at);
        data = data.with_connected_account(&format!("acct_bench{seed:011}"), account);
    }
    let account = StripeData::generate_seeded_at(&customers(large), SMALL_ACCOUNTS + 1, at);
    data.with_connected_account(LARGE, account)
}

/// The run.
pub async fn run(admin_url: &str, small: usize, large: usize) -> Value {
    let dir = std::env::temp_dir().join(format!("supasaasy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = FakeStripe::start(platform(small, large)).await;
    fake.set_latency(Duration::from_millis(LATENCY_MS));
    fake.set_rate_limit(Some(BUDGET as f64));
    RPS.store(BUDGET, Ordering::Relaxed);
    CONNECT.store(true, Ordering::Relaxed);
    let expected = small * (SMALL_ACCOUNTS as usize + 1) + large;
    let db_url = fresh_database(admin_url, "bench_connect").await;
    let daemon = start_daemon(&db_url, &fake, &dir);
    let pid = daemon.child.id();
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("http://{}{path}", daemon.addr);
        async move {
            http.get(url)
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let started = Instant::now();
    let job_id = start_full_job(&http, &daemon, &["customer"]).await;
    // When every small account had completed, and the large one's objects then.
    let mut smalls_done: Option<(f64, i64)> = None;
    let mut large_half: Option<f64> = None;
    let doc = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let doc = get(format!("/jobs/{job_id}?include_tasks=true")).await;
        let now = started.elapsed().as_secs_f64();
        let tasks = doc["tasks"].as_array().cloned().unwrap_or_default();
        let of = |account: &str| {
            tasks
                .iter()
                .find(|t| t["account_id"] == account)
                .cloned()
                .unwrap_or(Value::Null)
        };
        let large_done = of(LARGE)["entity_count"].as_i64().unwrap_or(0);
        if large_half.is_none() && large_done as usize * 2 >= large {
            large_half = Some(now);
        }
        let smalls: Vec<&Value> = tasks
            .iter()
            .filter(|t| t["account_id"].as_str().is_some_and(|a| a != LARGE))
            .collect();
        if smalls_done.is_none()
            && smalls.len() == SMALL_ACCOUNTS as usize
            && smalls.iter().all(|t| t["status"] == "completed")
        {
            smalls_done = Some((now, large_done));
        }
        if matches!(
            doc["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            break doc;
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let (_, peak) = memory_kib(pid);
    let requests = fake.requests();
    let objects = doc["processed_entities"].as_f64().unwrap_or(0.0);
    let (smalls_at, large_then) = smalls_done.unwrap_or((f64::NAN, -1));
    let result = json!({
        "latency_ms": LATENCY_MS,
        "requests_per_second_budget": BUDGET,
        "status": doc["status"],
        "accounts": SMALL_ACCOUNTS + 1,
        "objects": doc["processed_entities"],
        "expected_objects": expected,
        "seconds": (seconds * 10.0).round() / 10.0,
        "objects_per_second": (objects / seconds).round(),
        "provider_requests": requests,
        "requests_per_second": (requests as f64 / seconds * 10.0).round() / 10.0,
        "share_of_budget": (requests as f64 / seconds / BUDGET as f64 * 100.0).round() / 100.0,
        "answered_429": fake.rate_limited(),
        "requests_per_small_account": (1..=SMALL_ACCOUNTS)
            .map(|seed| fake.requests_for_account(&format!("acct_bench{seed:011}")))
            .sum::<u64>() as f64 / SMALL_ACCOUNTS as f64,
        "requests_of_large_account": fake.requests_for_account(LARGE),
        "small_accounts_done_at_seconds": (smalls_at * 10.0).round() / 10.0,
        "large_account_objects_then": large_then,
        "large_account_share_then": (large_then as f64 / large as f64 * 100.0).round() / 100.0,
        "large_account_half_at_seconds": large_half.map(|s| (s * 10.0).round() / 10.0),
        "peak_rss_mib": peak / 1024,
    });
    eprintln!("connect {result}");
    result
}
