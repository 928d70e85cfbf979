//! The real binary under faults: killed with SIGKILL mid-sync and taken over by a new daemon; stopped
//! with SIGTERM mid-sync and resumed; secrets (alert webhook URLs included) never reaching its log
//! or job messages.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use supasaasy_testkit::fake_alerts::{Answer, FakeAlerts};
use supasaasy_testkit::fake_stripe::{stripe_signature, FakeStripe};

use crate::helpers::{customers, fake_ids, fresh_database, ADMIN_KEY};
use crate::process::{serve, Serve, BIN};

/// Leases short enough that a takeover happens within seconds.
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace_seconds = 10

[worker]
poll_interval_ms = 100
lease_seconds = 2
request_timeout_seconds = 1

[[apps]]
app_key = "stripe_prod"
connector = "stripe"
api_key_env = "STRIPE_API_KEY"
webhook_secret_env = "STRIPE_WEBHOOK_SECRET"
base_url_env = "STRIPE_BASE_URL"
sync_resources = ["customer", "product", "price", "plan", "subscription"]
"#;

const WEBHOOK_SECRET: &str = "whsec_crash_test_secret_value";

fn spawn_daemon(config: &std::path::Path, db_url: &str, fake: &FakeStripe, api_key: &str) -> Serve {
    spawn_daemon_with(config, db_url, fake, api_key, &[])
}

/// [`spawn_daemon`] with more environment variables.
fn spawn_daemon_with(
    config: &std::path::Path,
    db_url: &str,
    fake: &FakeStripe,
    api_key: &str,
    env: &[(&str, &str)],
) -> Serve {
    let mut cmd = Command::new(BIN);
    cmd.args(["--config", config.to_str().unwrap(), "serve"])
        .env("DATABASE_URL", db_url)
        .env("ADMIN_API_KEY", ADMIN_KEY)
        .env("STRIPE_API_KEY", api_key)
        .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("STRIPE_BASE_URL", fake.base_url())
        .env("RUST_LOG", "debug")
        .envs(env.iter().copied());
    serve(cmd)
}

fn temp_config(text: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("supasaasy-crash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("supasaasy.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

async fn task_row(db: &tokio_postgres::Client) -> (String, i32, i32, i64) {
    let row = db
        .query_one(
            "SELECT status, pages, attempts, entity_count FROM supasaasy.sync_tasks",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    tokio::time::timeout(Duration::from_secs(90), async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

async fn start_sync(daemon: &Serve) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("http://{}/sync", daemon.addr))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"app_key": "stripe_prod", "mode": "full", "resource_types": ["customer"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["job_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_mid_sync_is_taken_over_without_duplicates_or_gaps() {
    let fake = FakeStripe::start(customers(1500)).await;
    fake.set_latency(Duration::from_millis(60));
    let db_url = fresh_database().await;
    let db = supasaasy::db::connect(&db_url).await.unwrap();
    let (dir, config) = temp_config(CONFIG);

    let first = spawn_daemon(&config, &db_url, &fake, fake.api_key());
    let job = start_sync(&first).await;
    wait_until("a few pages", || async { task_row(&db).await.1 >= 4 }).await;
    first.signal("-KILL");
    let (code, _) = first.wait().await;
    assert_eq!(code, None, "killed by a signal");
    let (status, pages_at_kill, _, _) = task_row(&db).await;
    assert_eq!(
        status, "processing",
        "the dead daemon's lease still holds the task"
    );
    assert!(pages_at_kill < 15, "killed mid-resource");

    let second = spawn_daemon(&config, &db_url, &fake, fake.api_key());
    wait_until("the job to end", || async {
        let row = db
            .query_one(
                "SELECT status FROM supasaasy.sync_jobs WHERE id = $1::text::uuid",
                &[&job],
            )
            .await
            .unwrap();
        row.get::<_, String>(0) != "pending" && row.get::<_, String>(0) != "processing"
    })
    .await;
    let (status, pages, attempts, entities) = task_row(&db).await;
    assert_eq!(status, "completed");
    // The listing is split into `created` ranges, each ending with a partial page: at least 15
    // pages, and at most one more per range. The entity count is exact: no page committed twice.
    assert!((15..=15 + 64).contains(&pages), "{pages} pages");
    assert_eq!(
        (attempts, entities),
        (2, 1500),
        "every page committed once, by two owners"
    );
    let ids: Vec<String> = db
        .query(
            "SELECT external_id FROM supasaasy.entities WHERE deleted_at IS NULL ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, fake_ids(&fake, "customer"), "exact parity");
    let listed = fake.requests_to("/v1/customers");
    // Each of the dead daemon's walkers (up to 8) may have held one page fetched but not
    // committed, and the next one prefetched: the new owner fetches those again.
    assert!(
        listed as i64 <= i64::from(pages) + 16,
        "{pages} pages, at most two a walker fetched twice: {listed}"
    );

    second.signal("-TERM");
    let (code, _) = second.wait().await;
    assert_eq!(code, Some(0));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_checkpoints_releases_and_exits_zero() {
    let fake = FakeStripe::start(customers(1200)).await;
    fake.set_latency(Duration::from_millis(100));
    let db_url = fresh_database().await;
    let db = supasaasy::db::connect(&db_url).await.unwrap();
    let (dir, config) = temp_config(CONFIG);

    let daemon = spawn_daemon(&config, &db_url, &fake, fake.api_key());
    start_sync(&daemon).await;
    wait_until("a few pages", || async { task_row(&db).await.1 >= 3 }).await;
    let started = std::time::Instant::now();
    daemon.signal("-TERM");
    let (code, _) = daemon.wait().await;
    assert_eq!(code, Some(0), "a clean stop exits 0");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "within the grace period"
    );
    let (status, pages, attempts, _) = task_row(&db).await;
    assert_eq!(status, "pending", "released for another worker");
    assert_eq!(attempts, 0, "a clean stop spends no attempt");
    assert!(pages >= 3, "released mid-run at page {pages}");

    fake.set_latency(Duration::ZERO);
    let daemon = spawn_daemon(&config, &db_url, &fake, fake.api_key());
    wait_until("the job to complete", || async {
        task_row(&db).await.0 == "completed"
    })
    .await;
    let (_, pages, attempts, entities) = task_row(&db).await;
    // Split into `created` ranges: at least 12 pages, at most one more per range.
    assert!((12..=12 + 64).contains(&pages), "{pages} pages");
    assert_eq!((attempts, entities), (1, 1200));
    daemon.signal("-TERM");
    assert_eq!(daemon.wait().await.0, Some(0));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_logs_errors_or_job_messages() {
    let fake = FakeStripe::start(customers(50)).await;
    let db_url = fresh_database().await;
    // Trust authentication ignores the password, so it can be any secret-looking string.
    let password = "pg_pw_never_logged_93f1";
    let with_password = db_url.replacen("postgres@", &format!("postgres:{password}@"), 1);
    let api_key = "sk_test_never_logged_7d2c";
    // The failed job's alert goes to a receiver that fails it, quoting the URL back.
    let receiver = FakeAlerts::start().await;
    receiver.set_answer(Answer::Status(500));
    let alert_token = "alert_token_never_logged_5e1a";
    let alert_path = format!("/services/T000/B000/{alert_token}");
    let alert_url = receiver.url(&alert_path);
    let (dir, config) = temp_config(&format!(
        "{CONFIG}\n[alerts]\nslack_webhook_url_env = \"SLACK_WEBHOOK_URL\"\n"
    ));
    let daemon = spawn_daemon_with(
        &config,
        &with_password,
        &fake,
        api_key,
        &[("SLACK_WEBHOOK_URL", &alert_url)],
    );
    let http = reqwest::Client::new();

    // The fake rejects this key: the job fails with an operator's message, not the key.
    let failed: Value = http
        .post(format!("http://{}/sync", daemon.addr))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"app_key": "stripe_prod", "mode": "full", "immediate": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(failed["status"], "failed");
    let message = failed["error_message"].as_str().unwrap();
    assert!(
        message.contains("stripe_prod") && message.contains("401"),
        "{message}"
    );
    // Wrong admin keys and bad signatures are refused and logged without the secrets.
    let wrong_admin = http
        .get(format!("http://{}/jobs", daemon.addr))
        .bearer_auth("not-the-admin-key")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_admin.status(), 401);
    let body = br#"{"id":"evt_x","object":"event","type":"customer.updated","created":1,"data":{"object":{"id":"cus_1","object":"customer"}}}"#;
    let forged = stripe_signature("whsec_forged", chrono::Utc::now().timestamp(), body);
    let refused = http
        .post(format!("http://{}/webhook/stripe_prod", daemon.addr))
        .header("Stripe-Signature", forged)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // The alert was tried and retried (each failure logged at debug level).
    receiver
        .wait_for(&alert_path, 2, Duration::from_secs(30))
        .await;

    daemon.signal("-TERM");
    let (code, logs) = daemon.wait().await;
    assert_eq!(code, Some(0));
    assert!(logs.len() > 5, "debug logs were captured");
    let all = format!("{}\n{failed}", logs.join("\n"));
    assert!(
        all.contains("alert not delivered yet"),
        "the failed alert deliveries were logged"
    );
    for secret in [password, api_key, WEBHOOK_SECRET, ADMIN_KEY, alert_token] {
        assert!(!all.contains(secret), "{secret} leaked");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_an_alert_in_flight_records_how_it_ended_within_the_grace_period() {
    let fake = FakeStripe::start(customers(10)).await;
    let db_url = fresh_database().await;
    let db = supasaasy::db::connect(&db_url).await.unwrap();
    // The failed job's alert goes to a receiver that holds the request for a minute.
    let receiver = FakeAlerts::start().await;
    receiver.set_answer(Answer::Hang(Duration::from_secs(60)));
    let alert_path = "/services/T000/B000/hanging";
    let config = CONFIG.replace("shutdown_grace_seconds = 10", "shutdown_grace_seconds = 2");
    let (dir, config) = temp_config(&format!(
        "{config}\n[alerts]\nslack_webhook_url_env = \"SLACK_WEBHOOK_URL\"\n"
    ));
    let daemon = spawn_daemon_with(
        &config,
        &db_url,
        &fake,
        "sk_test_refused_by_the_fake",
        &[("SLACK_WEBHOOK_URL", &receiver.url(alert_path))],
    );
    let failed: Value = reqwest::Client::new()
        .post(format!("http://{}/sync", daemon.addr))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"app_key": "stripe_prod", "mode": "full", "immediate": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(failed["status"], "failed", "{failed}");
    receiver
        .wait_for(alert_path, 1, Duration::from_secs(30))
        .await;

    let started = std::time::Instant::now();
    daemon.signal("-TERM");
    let (code, _) = daemon.wait().await;
    assert_eq!(code, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped within the grace period, not at the receiver's pace"
    );
    // The delivery cut short by the stop is recorded as failed, and says why.
    let rows = db
        .query(
            "SELECT outcome, detail ->> 'error' FROM supasaasy.integration_events
              WHERE event_type LIKE 'alert.%'",
            &[],
        )
        .await
        .unwrap();
    let ended: Vec<(String, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    // (The failed job's alert, and the open circuit's when the refusals opened it.)
    assert!(!ended.is_empty());
    for (outcome, error) in &ended {
        assert_eq!(outcome, "failed", "{ended:?}");
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("the daemon stopped")),
            "{ended:?}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
