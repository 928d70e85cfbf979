//! The throughput benchmark: a backfill of many customers at several provider latencies, then a
//! burst of signed webhooks at several connection counts, against the real `supasaasy serve`
//! binary, a throwaway Postgres and the fake Stripe, all on this machine.
//!
//! ```sh
//! cargo build --release --bin supasaasy --example bench
//! target/release/examples/bench [--customers 100000] [--latencies 0,150] [--webhooks 20000] [--connections 8,32] [--events on|off] [--rps N]
//! target/release/examples/bench --mixed 20000
//! target/release/examples/bench --connect 2000,100000
//! ```
//!
//! `--connect SMALL,LARGE` runs a Stripe Connect platform instead (see `connect`): 50 connected
//! accounts of SMALL customers and one of LARGE, at 150 ms with a 100/s budget.
//!
//! `--mixed N` runs the billing account instead (see `mixed`): N customers, invoices, charges and
//! payment intents, N/10 refunds, against a customers-only backfill of N in the same run.
//!
//! Reports, per backfill: objects/s, provider requests against the minimum (objects / 100), and the
//! daemon's resident memory (peak, and at each quarter of the run); per webhook burst: events/s,
//! p50 and p99 latency, non-2xx answers. Set `DATABASE_URL` to use an existing server.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::{stripe_signature, Counts, FakeStripe, StripeData};
use supasaasy_testkit::pg::TestPostgres;

mod connect;
mod mixed;

const ADMIN_KEY: &str = "bench-admin-key-0123456789";
const WEBHOOK_SECRET: &str = "whsec_bench_secret";
/// `--rps N`: the app's `requests_per_second` (0, the default here: no budget).
static RPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// `--events off`: run the daemon with the integration events log off, to measure what it costs.
static EVENTS_OFF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// `--concurrency N`: the daemon's `worker.concurrency` (4, the default).
static CONCURRENCY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(4);
/// The app is a Stripe Connect platform (`--connect`).
static CONNECT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct Args {
    mixed: Option<usize>,
    connect: Option<(usize, usize)>,
    customers: usize,
    latencies: Vec<u64>,
    webhooks: usize,
    connections: Vec<usize>,
}

fn args() -> Args {
    let mut a = Args {
        mixed: None,
        connect: None,
        customers: 100_000,
        latencies: vec![0, 150],
        webhooks: 20_000,
        connections: vec![8, 32],
    };
    let list =
        |v: &str| -> Vec<u64> { v.split(',').filter_map(|x| x.trim().parse().ok()).collect() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--customers" => a.customers = value.parse().expect("--customers N"),
            "--mixed" => a.mixed = Some(value.parse().expect("--mixed N")),
            "--concurrency" => CONCURRENCY.store(
                value.parse().expect("--concurrency N"),
                std::sync::atomic::Ordering::Relaxed,
            ),
            "--connect" => {
                let sizes = list(&value);
                a.connect = Some((sizes[0] as usize, sizes[1] as usize));
            }
            "--latencies" => a.latencies = list(&value),
            "--webhooks" => a.webhooks = value.parse().expect("--webhooks N"),
            "--rps" => RPS.store(
                value.parse().expect("--rps N"),
                std::sync::atomic::Ordering::Relaxed,
            ),
            "--events" => EVENTS_OFF.store(value == "off", std::sync::atomic::Ordering::Relaxed),
            "--connections" => {
                a.connections = list(&value).into_iter().map(|c| c as usize).collect()
            }
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

/// The `supasaasy` binary next to this example's directory.
fn daemon_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("supasaasy");
    assert!(
        bin.exists(),
        "build it first: cargo build --release --bin supasaasy ({})",
        bin.display()
    );
    bin
}

struct Daemon {
    child: Child,
    addr: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start_daemon(db_url: &str, fake: &FakeStripe, dir: &std::path::Path) -> Daemon {
    let config = dir.join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\npool_size = 24\n\n[server]\nlisten = \"127.0.0.1:0\"\n\n[worker]\nconcurrency = {}\npoll_interval_ms = 200\n\n\
             [[apps]]\napp_key = \"stripe_bench\"\nconnector = \"stripe\"\napi_key_env = \"STRIPE_API_KEY\"\n\
             webhook_secret_env = \"STRIPE_WEBHOOK_SECRET\"\nbase_url = \"{}\"\nrequests_per_second = {}\n{}\n[events]\nenabled = {}\n",
            CONCURRENCY.load(std::sync::atomic::Ordering::Relaxed),
            fake.base_url(),
            RPS.load(std::sync::atomic::Ordering::Relaxed),
            if CONNECT.load(std::sync::atomic::Ordering::Relaxed) {
                "[apps.connect]\nenabled = true\n"
            } else {
                ""
            },
            !EVENTS_OFF.load(std::sync::atomic::Ordering::Relaxed)
        ),
    )
    .unwrap();
    let mut child = Command::new(daemon_binary())
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("DATABASE_URL", db_url)
        .env("ADMIN_API_KEY", ADMIN_KEY)
        .env("STRIPE_API_KEY", fake.api_key())
        .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("RUST_LOG", "warn,supasaasy::daemon=info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting supasaasy serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            // Ready once migrated: the daemon listens first, then says so.
            if let Some(rest) = line
                .split("addr=")
                .nth(1)
                .filter(|_| line.contains("supasaasy ready"))
            {
                let _ = tx.send(
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve reports its address");
    Daemon { child, addr }
}

/// Resident memory of a process, in KiB: (current, peak).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn fresh_database(admin_url: &str, name: &str) -> String {
    let admin = supasaasy::db::connect(admin_url)
        .await
        .expect("connecting to Postgres");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    supasaasy_testkit::pg::with_dbname(admin_url, name)
}

async fn backfill(
    admin_url: &str,
    data_for: &dyn Fn() -> StripeData,
    customers: usize,
    latency_ms: u64,
) -> Value {
    let dir = std::env::temp_dir().join(format!("supasaasy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = FakeStripe::start(data_for()).await;
    fake.set_latency(Duration::from_millis(latency_ms));
    // With a budget, the fake enforces it as Stripe's rate limit: every 429 is counted.
    let rps = RPS.load(std::sync::atomic::Ordering::Relaxed);
    if rps > 0 {
        fake.set_rate_limit(Some(rps as f64));
    }
    let db_url = fresh_database(admin_url, &format!("bench_{latency_ms}")).await;
    let daemon = start_daemon(&db_url, &fake, &dir);
    let pid = daemon.child.id();
    let (doc, seconds, quarters) = full_sync(&daemon, &["customer"], customers).await;
    let (_, peak) = memory_kib(pid);
    let requests = fake.requests_to("/v1/customers");
    let result = json!({
        "latency_ms": latency_ms,
        "status": doc["status"],
        "objects": doc["processed_entities"],
        "seconds": (seconds * 10.0).round() / 10.0,
        "objects_per_second": (doc["processed_entities"].as_f64().unwrap_or(0.0) / seconds).round(),
        "provider_requests": requests,
        "answered_429": fake.rate_limited(),
        "minimum_requests": customers.div_ceil(100),
        "peak_rss_mib": peak / 1024,
        "rss_mib_at_quarters": quarters,
    });
    eprintln!("backfill {result}");
    if latency_ms == 0 {
        // The same listing again, nothing changed: every row is compared, none rewritten.
        let (doc, seconds, _) = full_sync(&daemon, &["customer"], customers).await;
        let resync = json!({
            "status": doc["status"],
            "objects": doc["processed_entities"],
            "seconds": (seconds * 10.0).round() / 10.0,
            "objects_per_second": (doc["processed_entities"].as_f64().unwrap_or(0.0) / seconds).round(),
        });
        eprintln!("resync {resync}");
        // Keep this daemon and database for the webhook bursts.
        let webhooks = webhook_bursts(&daemon, &fake).await;
        return json!({"backfill": result, "resync": resync, "webhooks": webhooks});
    }
    json!({"backfill": result})
}

/// Asks the daemon for a full sync of `resources`; the job's id.
async fn start_full_job(http: &reqwest::Client, daemon: &Daemon, resources: &[&str]) -> String {
    let job: Value = http
        .post(format!("http://{}/sync", daemon.addr))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"app_key": "stripe_bench", "mode": "full", "resource_types": resources}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    job["job_id"].as_str().expect("a job id").to_string()
}

/// Runs a full sync of `resources` (about `objects` objects); the job's final document, the
/// seconds it took, and the daemon's memory at each quarter of it.
async fn full_sync(daemon: &Daemon, resources: &[&str], objects: usize) -> (Value, f64, Vec<u64>) {
    let pid = daemon.child.id();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let job_id = start_full_job(&http, daemon, resources).await;
    let mut quarters = Vec::new();
    let doc = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let doc: Value = http
            .get(format!("http://{}/jobs/{job_id}", daemon.addr))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done = doc["processed_entities"].as_u64().unwrap_or(0) as usize;
        while quarters.len() < 4 && done * 4 >= objects * (quarters.len() + 1) {
            quarters.push(memory_kib(pid).0 / 1024);
        }
        if matches!(
            doc["status"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            break doc;
        }
    };
    (doc, started.elapsed().as_secs_f64(), quarters)
}

static BURSTS: std::sync::OnceLock<(usize, Vec<usize>)> = std::sync::OnceLock::new();

async fn webhook_bursts(daemon: &Daemon, fake: &FakeStripe) -> Value {
    let (count, connections) = BURSTS.get().cloned().unwrap();
    if count == 0 {
        // `--webhooks 0`: a backfill-only run.
        return json!([]);
    }
    let ids = fake.ids("customer");
    let mut results = Vec::new();
    let mut next_created = 0;
    for (round, &conns) in connections.iter().enumerate() {
        // Distinct events, each a newer state of an existing customer: newer than the backfill's
        // rows and than the previous round's events, so every event is applied (written).
        let base_created = (chrono::Utc::now().timestamp() + 1).max(next_created);
        next_created = base_created + (count / ids.len()) as i64 + 2;
        let bodies: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let id = &ids[i % ids.len()];
                let mut object = fake.get("customer", id).unwrap();
                object["metadata"] = json!({"bench_round": round, "n": i});
                serde_json::to_vec(&json!({
                    "id": format!("evt_bench_{round}_{i}"),
                    "object": "event",
                    "type": "customer.updated",
                    "created": base_created + (i / ids.len()) as i64,
                    "data": {"object": object},
                }))
                .unwrap()
            })
            .collect();
        let url = format!("http://{}/webhook/stripe_bench", daemon.addr);
        let (sent, seconds) = burst(&url, bodies, conns).await;
        let failures = sent.iter().filter(|d| !d.ok).count();
        let applied = sent.iter().filter(|d| d.applied).count();
        let mut latencies: Vec<Duration> = sent.iter().map(|d| d.elapsed).collect();
        let result = json!({
            "connections": conns,
            "events": count,
            "events_per_second": (count as f64 / seconds).round(),
            "p50_ms": ms(&mut latencies, 0.50),
            "p99_ms": ms(&mut latencies, 0.99),
            "non_2xx": failures,
            "applied": applied,
        });
        eprintln!("webhooks {result}");
        results.push(result);
    }
    let conns = connections.iter().copied().max().unwrap_or(8);
    results.push(conflict_burst(daemon, fake, count.min(ids.len() * 5), conns).await);
    Value::Array(results)
}

/// One delivery of a burst.
struct Sent {
    /// From sending the request to its answer's head.
    elapsed: Duration,
    /// The answer was 2xx.
    ok: bool,
    /// The answer said `"action":"applied"`.
    applied: bool,
}

/// Sends `bodies` as signed webhooks to `url` over `conns` keep-alive connections (connection
/// `c` sends bodies `c`, `c + conns`, ...): each delivery, in the bodies' order, and the seconds
/// the burst took.
async fn burst(url: &str, bodies: Vec<Vec<u8>>, conns: usize) -> (Vec<Sent>, f64) {
    let count = bodies.len();
    let bodies = Arc::new(bodies);
    let url = Arc::new(url.to_owned());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (bodies, url) = (bodies.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut sent = Vec::new();
            for i in (c..bodies.len()).step_by(conns) {
                let body = bodies[i].clone();
                let sig = stripe_signature(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &body);
                let start = Instant::now();
                let resp = http
                    .post(url.as_str())
                    .header("Stripe-Signature", sig)
                    .body(body)
                    .send()
                    .await;
                let elapsed = start.elapsed();
                let (ok, applied) = match resp {
                    Ok(r) if r.status().is_success() => {
                        let body = r.bytes().await.unwrap_or_default();
                        (
                            true,
                            body.windows(18).any(|w| w == br#""action":"applied""#),
                        )
                    }
                    _ => (false, false),
                };
                sent.push((
                    i,
                    Sent {
                        elapsed,
                        ok,
                        applied,
                    },
                ));
            }
            sent
        }));
    }
    let mut sent: Vec<Option<Sent>> = (0..count).map(|_| None).collect();
    for t in tasks {
        for (i, d) in t.await.unwrap() {
            sent[i] = Some(d);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let sent = sent.into_iter().map(|d| d.expect("every body sent"));
    (sent.collect(), seconds)
}

/// The `p` quantile of `v`, in milliseconds to a tenth.
fn ms(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let d = v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// A burst in which every tenth event is the second state of its customer in the second of a
/// first one delivered beforehand: the daemon cannot order the two from the events and fetches
/// the customer from the fake, which now answers after 150 ms. The other events need no fetch;
/// their latencies show what the fetches cost everyone else.
async fn conflict_burst(daemon: &Daemon, fake: &FakeStripe, count: usize, conns: usize) -> Value {
    let ids = fake.ids("customer");
    let conflicts = count / 10;
    let at = chrono::Utc::now().timestamp() + 100_000;
    let url = format!("http://{}/webhook/stripe_bench", daemon.addr);
    let event = |id: &str, n: usize, created: i64, tag: &str| {
        let mut object = fake.get("customer", id).unwrap();
        object["metadata"] = json!({"bench_conflict": tag});
        serde_json::to_vec(&json!({
            "id": format!("evt_conflict_{tag}_{n}"),
            "object": "event",
            "type": "customer.updated",
            "created": created,
            "data": {"object": object},
        }))
        .unwrap()
    };
    // The first state of each conflicting customer, delivered untimed.
    let http = reqwest::Client::new();
    for (n, id) in ids.iter().take(conflicts).enumerate() {
        let body = event(id, n, at, "first");
        let sig = stripe_signature(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &body);
        let r = http
            .post(&url)
            .header("Stripe-Signature", sig)
            .body(body)
            .send()
            .await;
        assert!(
            r.is_ok_and(|r| r.status().is_success()),
            "first states delivered"
        );
    }
    // The burst: a conflict every tenth event, the others each a newer state of another customer.
    let needs_fetch = |i: usize| i.is_multiple_of(10);
    let bodies: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            if needs_fetch(i) {
                event(&ids[i / 10], i, at, "second")
            } else {
                let id = &ids[conflicts + i % (ids.len() - conflicts)];
                event(id, i, at + 1 + (i / ids.len()) as i64, "plain")
            }
        })
        .collect();
    fake.set_latency(Duration::from_millis(150));
    let (sent, seconds) = burst(&url, bodies, conns).await;
    fake.set_latency(Duration::ZERO);
    let failures = sent.iter().filter(|d| !d.ok).count();
    let (mut plain, mut fetched) = (Vec::new(), Vec::new());
    for (i, d) in sent.iter().enumerate() {
        if needs_fetch(i) {
            &mut fetched
        } else {
            &mut plain
        }
        .push(d.elapsed);
    }
    let result = json!({
        "connections": conns,
        "events": count,
        "needing_a_fetch": conflicts,
        "provider_latency_ms": 150,
        "events_per_second": (count as f64 / seconds).round(),
        "plain_p50_ms": ms(&mut plain, 0.50),
        "plain_p99_ms": ms(&mut plain, 0.99),
        "fetching_p50_ms": ms(&mut fetched, 0.50),
        "fetching_p99_ms": ms(&mut fetched, 0.99),
        "non_2xx": failures,
    });
    eprintln!("webhooks with fetches {result}");
    result
}

#[tokio::main]
async fn main() {
    let args = args();
    BURSTS
        .set((args.webhooks, args.connections.clone()))
        .unwrap();
    let _pg;
    let admin_url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let pg = TestPostgres::start().expect("starting a throwaway Postgres");
            let url = pg.url("postgres");
            _pg = pg;
            url
        }
    };
    if let Some((small, large)) = args.connect {
        let report = connect::run(&admin_url, small, large).await;
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return;
    }
    if let Some(n) = args.mixed {
        let report = mixed::run(&admin_url, n).await;
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return;
    }
    let customers = args.customers;
    let counts = Counts {
        customers,
        products: 1,
        prices_per_product: 1,
        subscriptions: 0,
        items_per_subscription: 1,
        canceled_every: 0,
        ..Counts::default()
    };
    let data_for = move || StripeData::generate(&counts);
    let mut report = Vec::new();
    for &latency in &args.latencies {
        report.push(backfill(&admin_url, &data_for, customers, latency).await);
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
            "customers": customers,
            "runs": report,
        }))
        .unwrap()
    );
}
