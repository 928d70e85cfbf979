//! The real binary: config errors, `serve` with a sync and a clean stop on SIGTERM, `sync --wait`.

use std::process::Command;

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::{Counts, FakeStripe, StripeData};

use crate::helpers::{empty_database, fake_ids, fresh_database, ADMIN_KEY};
use crate::process::{serve, BIN};

fn config_file(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("supasaasy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn temp_dir() -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("supasaasy-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[worker]
poll_interval_ms = 100

[[apps]]
app_key = "stripe_prod"
connector = "stripe"
api_key_env = "STRIPE_API_KEY"
base_url_env = "STRIPE_BASE_URL"
sync_resources = ["customer", "product", "price", "plan", "subscription"]
"#;

#[test]
fn config_errors_stop_start_up_with_one_line_naming_the_key() {
    let dir = temp_dir();
    let cases = [
        (
            CONFIG.replace(
                "connector = \"stripe\"",
                "connector = \"stripe\"\nflavour = 1",
            ),
            "apps[0].flavour: unknown field `flavour`",
        ),
        (
            CONFIG.replace("stripe_prod", "Stripe Prod"),
            "apps[0].app_key",
        ),
        (
            CONFIG.to_string(),
            "environment variable STRIPE_API_KEY is not set",
        ),
    ];
    for (text, want) in cases {
        let path = config_file(&dir, &text);
        for command in ["check-config", "serve"] {
            let out = Command::new(BIN)
                .args(["--config", path.to_str().unwrap(), command])
                .env("DATABASE_URL", "postgres://127.0.0.1:1/none")
                .env("ADMIN_API_KEY", ADMIN_KEY)
                .env_remove("STRIPE_API_KEY")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "{command}: {stderr}");
            assert!(
                stderr.contains(want),
                "{command}: wanted {want:?} in {stderr}"
            );
        }
    }
    let path = config_file(&dir, CONFIG);
    let ok = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .env("DATABASE_URL", "postgres://127.0.0.1:1/none")
        .env("ADMIN_API_KEY", ADMIN_KEY)
        .env("STRIPE_API_KEY", "sk_test_secret_value")
        .output()
        .unwrap();
    assert!(ok.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(!all.contains("sk_test_secret_value"), "secrets never print");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line() {
    let db_url = empty_database().await;
    let dir = temp_dir();
    let path = config_file(&dir, CONFIG);
    let out = Command::new(BIN)
        .args([
            "--config",
            path.to_str().unwrap(),
            "--log-format",
            "json",
            "migrate",
        ])
        .env("DATABASE_URL", &db_url)
        .env("ADMIN_API_KEY", ADMIN_KEY)
        .env("STRIPE_API_KEY", "sk_test_json_logs")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "applied migration" && l["level"] == "INFO"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_syncs_and_stops_cleanly_on_sigterm() {
    let fake = FakeStripe::start(StripeData::generate(&Counts {
        customers: 240,
        products: 4,
        prices_per_product: 2,
        subscriptions: 90,
        items_per_subscription: 2,
        canceled_every: 4,
        ..Counts::default()
    }))
    .await;
    let db_url = fresh_database().await;
    let dir = temp_dir();
    let path = config_file(&dir, CONFIG);
    let mut cmd = Command::new(BIN);
    cmd.args(["--config", path.to_str().unwrap(), "serve"])
        .env("DATABASE_URL", &db_url)
        .env("ADMIN_API_KEY", ADMIN_KEY)
        .env("STRIPE_API_KEY", fake.api_key())
        .env("STRIPE_BASE_URL", fake.base_url())
        .env("RUST_LOG", "info");
    // The daemon logs the address it bound (port 0 in the config).
    let daemon = serve(cmd);
    let addr = daemon.addr.clone();
    let http = reqwest::Client::new();
    let done: Value = http
        .post(format!("http://{addr}/sync"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"app_key": "stripe_prod", "mode": "full", "immediate": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let expected: usize = [
        "customer",
        "product",
        "price",
        "plan",
        "subscription",
        "subscription_item",
    ]
    .iter()
    .map(|r| fake_ids(&fake, r).len())
    .sum();
    assert_eq!(done["processed_entities"], expected as i64);

    // `jobs` reads the same queue from the command line.
    let jobs = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "jobs"])
        .env("DATABASE_URL", &db_url)
        .env("ADMIN_API_KEY", ADMIN_KEY)
        .env("STRIPE_API_KEY", fake.api_key())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&jobs.stdout).contains(done["job_id"].as_str().unwrap()));

    // `sync --wait` enqueues, waits for the daemon's workers, and exits 0 on completion.
    let waited = Command::new(BIN)
        .args([
            "--config",
            path.to_str().unwrap(),
            "sync",
            "stripe_prod",
            "--full",
            "--resource",
            "customer",
            "--wait",
        ])
        .env("DATABASE_URL", &db_url)
        .env("ADMIN_API_KEY", ADMIN_KEY)
        .env("STRIPE_API_KEY", fake.api_key())
        .output()
        .unwrap();
    assert!(
        waited.status.success(),
        "{}",
        String::from_utf8_lossy(&waited.stderr)
    );
    let doc: Value = serde_json::from_slice(
        &waited.stdout[waited.stdout.iter().position(|&b| b == b'{').unwrap()..],
    )
    .unwrap();
    assert_eq!(doc["status"], "completed");
    assert_eq!(doc["processed_entities"], 240);
    // Not a terminal: one line per change of progress, no bar redrawn in place.
    let progress = String::from_utf8_lossy(&waited.stderr);
    assert!(!progress.contains('\r'), "{progress}");
    let lines: Vec<&str> = progress.lines().filter(|l| l.contains(" tasks ")).collect();
    assert!(!lines.is_empty(), "{progress}");
    assert!(lines.windows(2).all(|w| w[0] != w[1]), "{progress}");
    assert!(lines.last().unwrap().contains("100%"), "{progress}");

    daemon.signal("-TERM");
    let (code, logs) = daemon.wait().await;
    assert_eq!(code, Some(0), "serve exits 0 on SIGTERM");
    assert!(
        !logs.iter().any(|l| l.contains(fake.api_key())),
        "the API key never reaches the log"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_environment_overrides_the_file_and_config_prints_what_is_in_effect() {
    let dir = temp_dir();
    let path = config_file(&dir, CONFIG);
    let run = |extra: &[(&str, &str)], command: &str| {
        Command::new(BIN)
            .args(["--config", path.to_str().unwrap(), command])
            .env(
                "DATABASE_URL",
                "postgres://u:hunter2@db.example:5433/mirror?sslmode=require",
            )
            .env("ADMIN_API_KEY", ADMIN_KEY)
            .env("STRIPE_API_KEY", "sk_test_secret_value")
            .envs(extra.iter().copied())
            .output()
            .unwrap()
    };
    let out = run(
        &[
            ("SUPASAASY_SERVER__LISTEN", "0.0.0.0:9999"),
            ("SUPASAASY_WORKER__CONCURRENCY", "12"),
            (
                "SUPASAASY_APPS__STRIPE_PROD__SYNC_RESOURCES",
                "[\"invoice\", \"customer\"]",
            ),
        ],
        "config",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["server"]["listen"], "0.0.0.0:9999");
    assert_eq!(shown["worker"]["concurrency"], 12);
    assert_eq!(
        shown["apps"][0]["sync_resources"],
        json!(["customer", "invoice"])
    );
    assert_eq!(
        shown["database"]["url"],
        "db.example:5433/mirror (sslmode=require)"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("hunter2") && !text.contains("sk_test_secret_value"),
        "{text}"
    );

    let out = run(&[("SUPASAASY_WORKER__CONCURRENCY", "-1")], "check-config");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("worker.concurrency (SUPASAASY_WORKER__CONCURRENCY): must be positive"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
