//! Stripe Connect: a platform app mirrors its connected accounts through one app. Each account's
//! objects land under its `account_id` (ids repeat across accounts), full and incremental runs
//! ask each account with `Stripe-Account`, Connect webhooks are routed (and refetched) by their
//! `account`, a deauthorized account stops and keeps its rows, a refused account fails alone, and
//! a crashed run of an account resumes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use supasaasy::worker::Worker;
use supasaasy_testkit::fake_stripe::{fixture, stripe_signature};
use tokio_util::sync::CancellationToken;

use crate::helpers::{customers, sign_now, spawn_app, Setup, TestApp};

const PLATFORM: &str = "platform";
const TENANT_A: &str = "acct_1TenantAaaa";
const TENANT_B: &str = "acct_1TenantBbbb";
const CONNECT_SECRET: &str = "whsec_connect_endpoint";

/// A platform with 5 customers of its own and two connected accounts of 120 and 30 (the
/// generator gives each the same first ids: ids repeat across accounts).
fn platform(accounts: &str, workers: bool) -> Setup {
    let data = customers(5)
        .with_connected_account(TENANT_A, customers(120))
        .with_connected_account(TENANT_B, customers(30));
    Setup {
        apps: vec![(PLATFORM.into(), data)],
        app_extra: format!(
            "sync_resources = [\"customer\", \"coupon\"]\n\
             [apps.connect]\nenabled = true\naccounts = {accounts}\n\
             webhook_secret_env = \"PLATFORM_CONNECT_WHSEC\"\n"
        ),
        env: vec![("PLATFORM_CONNECT_WHSEC".into(), CONNECT_SECRET.into())],
        workers,
        ..Setup::default()
    }
}

/// Rows per account of a view, for the platform app.
async fn per_account(app: &TestApp, view: &str) -> BTreeMap<String, i64> {
    app.db()
        .await
        .query(
            &format!(
                "SELECT account_id, count(*) FROM supasaasy.{view} WHERE app_key = $1 GROUP BY 1"
            ),
            &[&PLATFORM],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// A row of an account: payload and whether it is a tombstone.
async fn row_in(app: &TestApp, account: &str, collection: &str, id: &str) -> Option<(Value, bool)> {
    app.db()
        .await
        .query_opt(
            "SELECT raw_payload, deleted_at IS NOT NULL FROM supasaasy.entities
              WHERE app_key = $1 AND account_id = $2 AND collection_key = $3 AND external_id = $4",
            &[&PLATFORM, &account, &collection, &id],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

/// Delivers an event to the Connect route, signed with the Connect endpoint's secret.
async fn deliver_connect(app: &TestApp, event: &Value) -> (u16, Value) {
    let body = serde_json::to_vec(event).unwrap();
    let signature = stripe_signature(CONNECT_SECRET, chrono::Utc::now().timestamp(), &body);
    app.post_signed(
        &format!("/webhook/{PLATFORM}/connect"),
        &body,
        Some(&signature),
    )
    .await
}

/// The reasons of the app's ignored events, once there are `n` (the events log is written in
/// the background).
async fn ignored_reasons(app: &TestApp, n: usize) -> Vec<String> {
    let db = app.db().await;
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let rows = db
                .query(
                    "SELECT detail ->> 'reason' FROM supasaasy.integration_events
                      WHERE app_key = $1 AND outcome = 'ignored' ORDER BY id",
                    &[&PLATFORM],
                )
                .await
                .unwrap();
            let reasons: Vec<String> = rows.iter().filter_map(|r| r.get(0)).collect();
            if reasons.len() >= n {
                return reasons;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the ignored events are recorded")
}

async fn full_sync(app: &TestApp) -> Value {
    let job = full_job(app).await;
    app.wait_job(&job).await
}

/// Asks for a full job and runs its first three tasks (the platform's customers and coupons, and
/// the listing of its accounts), leaving the accounts' tasks queued; the job's id.
async fn start_full_job(app: &TestApp) -> String {
    let job = full_job(app).await;
    for _ in 0..3 {
        Worker::new(app.ctx.clone())
            .try_execute_task(&CancellationToken::new())
            .await
            .unwrap()
            .expect("a task to run");
    }
    job
}

/// Asks for a full job of the platform; its id.
async fn full_job(app: &TestApp) -> String {
    let job = app
        .sync(json!({"app_key": PLATFORM, "mode": "full"}), 202)
        .await;
    job["job_id"].as_str().unwrap().to_owned()
}

/// Runs queued tasks with a worker of its own until none is left.
async fn drain(app: &TestApp) -> usize {
    let worker = Worker::new(app.ctx.clone());
    let mut ran = 0;
    while worker
        .try_execute_task(&CancellationToken::new())
        .await
        .unwrap()
        .is_some()
    {
        ran += 1;
    }
    ran
}

fn coupon(id: &str, percent_off: f64) -> Value {
    let mut c = fixture("coupon");
    c["id"] = json!(id);
    c["percent_off"] = json!(percent_off);
    c["amount_off"] = Value::Null;
    c
}

#[tokio::test]
async fn a_connect_app_mirrors_every_account_under_its_id() {
    let app = spawn_app(platform("\"all\"", true)).await;
    let fake = app.fake();
    let own = fake.platform_account_id().to_owned();
    fake.in_account(TENANT_A)
        .upsert("coupon", coupon("SUMMER", 10.0));
    fake.in_account(TENANT_B)
        .upsert("coupon", coupon("SUMMER", 25.0));

    let doc = full_sync(&app).await;
    assert_eq!(doc["status"], "completed", "{doc}");
    // The platform's two resources and its accounts, then two resources per account.
    assert_eq!(doc["total_tasks"], 3 + 2 * 2, "{doc}");
    let accounts = doc["accounts"].as_array().expect("progress per account");
    assert_eq!(accounts.len(), 2, "{doc}");
    for a in accounts {
        assert_eq!(
            (a["tasks"].as_i64(), a["completed"].as_i64()),
            (Some(2), Some(2)),
            "{a}"
        );
    }
    assert_eq!(accounts[0]["account_id"], TENANT_A);
    assert_eq!(
        accounts[0]["entity_count"], 121,
        "120 customers and a coupon"
    );
    let tasks = doc["tasks"].as_array().unwrap();
    assert!(tasks
        .iter()
        .any(|t| t["account_id"] == TENANT_B && t["resource_type"] == "customer"));

    // Every account's objects under its id; the platform's under its own.
    let expected: BTreeMap<String, i64> = [
        (own.clone(), 5),
        (TENANT_A.into(), 120),
        (TENANT_B.into(), 30),
    ]
    .into_iter()
    .collect();
    assert_eq!(per_account(&app, "stripe_customers").await, expected);
    let first = fake
        .in_account(TENANT_B)
        .ids("customer")
        .last()
        .unwrap()
        .clone();
    assert!(
        fake.in_account(TENANT_A).get("customer", &first).is_some(),
        "the generator repeats ids across accounts"
    );
    // A coupon id chosen by people, in two accounts: two rows, each its account's.
    let coupons = app
        .db()
        .await
        .query(
            "SELECT account_id, percent_off::float8 FROM supasaasy.stripe_coupons
              WHERE app_key = $1 AND external_id = 'SUMMER' ORDER BY 1",
            &[&PLATFORM],
        )
        .await
        .unwrap();
    let coupons: Vec<(String, f64)> = coupons.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        coupons,
        vec![(TENANT_A.to_owned(), 10.0), (TENANT_B.to_owned(), 25.0)]
    );
    // The connected accounts, as the platform lists them.
    let listed = app
        .db()
        .await
        .query(
            "SELECT external_id, account_id, deauthorized_at IS NULL FROM supasaasy.stripe_accounts
              WHERE app_key = $1 ORDER BY 1",
            &[&PLATFORM],
        )
        .await
        .unwrap();
    let listed: Vec<(String, String, bool)> = listed
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        listed,
        vec![
            (TENANT_A.to_owned(), own.clone(), true),
            (TENANT_B.to_owned(), own.clone(), true)
        ]
    );
    assert!(fake.requests_for_account(TENANT_A) > 0 && fake.requests_for_account(TENANT_B) > 0);

    // Incremental: each account's events, read in that account.
    let now = chrono::Utc::now().timestamp();
    app.set_cursors(now - 3600).await;
    fake.set_clock(Some(now - 1800));
    let tenant_a = fake.in_account(TENANT_A);
    tenant_a.update("customer", &first, |c| {
        c["email"] = json!("a@tenant.example")
    });
    fake.in_account(TENANT_B).update("coupon", "SUMMER", |c| {
        c["metadata"] = json!({"season": "hot"})
    });
    let before_b = fake.requests_for_account(TENANT_B);
    let job = app
        .sync(json!({"app_key": PLATFORM, "mode": "incremental"}), 202)
        .await;
    let doc = app.wait_job(job["job_id"].as_str().unwrap()).await;
    assert_eq!(doc["status"], "completed", "{doc}");
    let notes = doc["notes"].as_array().unwrap();
    assert!(notes.is_empty(), "every account read its events: {doc}");
    let (a, _) = row_in(&app, TENANT_A, "stripe_customer", &first)
        .await
        .unwrap();
    assert_eq!(a["email"], "a@tenant.example");
    let (b, _) = row_in(&app, TENANT_B, "stripe_customer", &first)
        .await
        .unwrap();
    assert_ne!(
        b["email"], "a@tenant.example",
        "the same id in another account is untouched"
    );
    let (own_row, _) = row_in(&app, &own, "stripe_customer", &first).await.unwrap();
    assert_ne!(own_row["email"], "a@tenant.example");
    let (summer_b, _) = row_in(&app, TENANT_B, "stripe_coupon", "SUMMER")
        .await
        .unwrap();
    assert_eq!(summer_b["metadata"]["season"], "hot");
    let (summer_a, _) = row_in(&app, TENANT_A, "stripe_coupon", "SUMMER")
        .await
        .unwrap();
    assert_ne!(summer_a["metadata"]["season"], "hot");
    assert!(
        fake.requests_for_account(TENANT_B) > before_b,
        "B's events asked of B"
    );
    app.stop().await;
}

#[tokio::test]
async fn connect_webhooks_are_routed_by_account_and_refetch_from_it() {
    let app = spawn_app(platform(&format!("[\"{TENANT_A}\"]"), true)).await;
    let fake = app.fake();
    let doc = full_sync(&app).await;
    assert_eq!(doc["status"], "completed", "{doc}");
    assert_eq!(
        doc["accounts"].as_array().unwrap().len(),
        1,
        "only the configured account is synced: {doc}"
    );
    assert_eq!(
        per_account(&app, "stripe_customers").await.get(TENANT_B),
        None
    );

    // Two changes of a tenant's customer in one second: the second cannot be ordered by its
    // time, so the customer is fetched, from the tenant (the platform would answer 404, and a
    // 404 is a deletion).
    let tenant = fake.in_account(TENANT_A);
    let id = tenant.ids("customer")[7].clone();
    let now = chrono::Utc::now().timestamp();
    app.set_cursors(now - 3600).await;
    fake.set_clock(Some(now - 30));
    tenant.update("customer", &id, |c| c["name"] = json!("First"));
    let first = tenant.last_event().unwrap();
    tenant.update("customer", &id, |c| c["name"] = json!("Second"));
    let second = tenant.last_event().unwrap();
    assert_eq!(first["account"], TENANT_A);
    let (status, body) = deliver_connect(&app, &first).await;
    assert_eq!(
        (status, body["action"].as_str()),
        (200, Some("applied")),
        "{body}"
    );
    let before = fake.requests_for_account(TENANT_A);
    let (status, body) = deliver_connect(&app, &second).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        fake.requests_for_account(TENANT_A),
        before + 1,
        "fetched from the tenant"
    );
    let (row, deleted) = row_in(&app, TENANT_A, "stripe_customer", &id)
        .await
        .unwrap();
    assert_eq!((row["name"].as_str(), deleted), (Some("Second"), false));

    // A tenant's deletion is the tenant's only.
    fake.set_clock(None);
    tenant.delete("customer", &id);
    let deleted_event = tenant.last_event().unwrap();
    let (status, _) = deliver_connect(&app, &deleted_event).await;
    assert_eq!(status, 200);
    assert!(
        row_in(&app, TENANT_A, "stripe_customer", &id)
            .await
            .unwrap()
            .1
    );
    let own = fake.platform_account_id().to_owned();
    if let Some((_, own_deleted)) = row_in(&app, &own, "stripe_customer", &id).await {
        assert!(!own_deleted, "the platform's customer of the same id stays");
    }

    // Not the app's: a live-mode event for a test key, an account not in connect.accounts.
    let mut live = second.clone();
    live["id"] = json!("evt_live_on_test_key");
    live["livemode"] = json!(true);
    live["data"]["object"]["name"] = json!("Live");
    let (status, body) = deliver_connect(&app, &live).await;
    assert_eq!(
        (status, body["action"].as_str()),
        (200, Some("ignored")),
        "{body}"
    );
    let mut other = second.clone();
    other["id"] = json!("evt_other_tenant");
    other["account"] = json!(TENANT_B);
    let (status, body) = deliver_connect(&app, &other).await;
    assert_eq!(
        (status, body["action"].as_str()),
        (200, Some("ignored")),
        "{body}"
    );
    assert!(row_in(&app, TENANT_B, "stripe_customer", &id)
        .await
        .is_none());
    let reasons = ignored_reasons(&app, 2).await;
    assert!(
        reasons.iter().any(|r| r.contains("live-mode event")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains(TENANT_B)), "{reasons:?}");

    // account.updated upserts the account, as the platform sees it.
    fake.update_account(TENANT_A, |a| a["email"] = json!("owner@tenant-a.example"));
    let updated = fake.last_event().unwrap();
    assert_eq!(updated["type"], "account.updated");
    let (status, body) = deliver_connect(&app, &updated).await;
    assert_eq!(
        (status, body["action"].as_str()),
        (200, Some("applied")),
        "{body}"
    );
    let email: Option<String> = app
        .db()
        .await
        .query_one(
            "SELECT email FROM supasaasy.stripe_accounts WHERE app_key = $1 AND external_id = $2",
            &[&PLATFORM, &TENANT_A],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(email.as_deref(), Some("owner@tenant-a.example"));

    // The Connect route takes the Connect endpoint's secret only; the platform route its own.
    let body = serde_json::to_vec(&updated).unwrap();
    let resp = app
        .http
        .post(format!("{}/webhook/{PLATFORM}/connect", app.base))
        .header("Stripe-Signature", sign_now(PLATFORM, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    app.stop().await;
}

#[tokio::test]
async fn a_deauthorized_account_stops_and_keeps_its_rows() {
    let app = spawn_app(platform("\"all\"", false)).await;
    let fake = app.fake();
    // The platform's own tasks and its accounts' listing run; the accounts' tasks are queued.
    let job_id = start_full_job(&app).await;
    let queued: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.sync_tasks WHERE account_id <> '' AND status = 'pending'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 4);
    // Tenant A's customers land; then B takes the platform's access away.
    let event = fake.deauthorize(TENANT_B);
    let (status, body) = deliver_connect(&app, &event).await;
    assert_eq!(
        (status, body["action"].as_str()),
        (200, Some("applied")),
        "{body}"
    );
    drain(&app).await;
    let doc = app.wait_job(&job_id).await;
    assert_eq!(doc["status"], "completed", "{doc}");
    let b = doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account_id"] == TENANT_B)
        .unwrap()
        .clone();
    assert_eq!(
        (b["cancelled"].as_i64(), b["failed"].as_i64()),
        (Some(2), Some(0)),
        "{doc}"
    );
    let note = doc["notes"].as_array().unwrap();
    assert!(
        note.iter().any(|n| n.as_str().unwrap().contains(TENANT_B)),
        "{doc}"
    );
    let deauthorized: bool = app
        .db()
        .await
        .query_one(
            "SELECT deauthorized_at IS NOT NULL FROM supasaasy.stripe_accounts
              WHERE app_key = $1 AND external_id = $2",
            &[&PLATFORM, &TENANT_B],
        )
        .await
        .unwrap()
        .get(0);
    assert!(deauthorized);
    assert_eq!(
        per_account(&app, "stripe_customers").await.get(TENANT_A),
        Some(&120)
    );

    // B's rows from before stay; a new job syncs A only.
    let b_rows = |app: &TestApp| {
        let db = app.ctx.pool.clone();
        async move {
            db.get()
                .await
                .unwrap()
                .query_one(
                    "SELECT count(*) FROM supasaasy.entities WHERE account_id = $1 AND deleted_at IS NULL",
                    &[&TENANT_B],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    let before = b_rows(&app).await;
    let job = full_job(&app).await;
    drain(&app).await;
    let doc = app.wait_job(&job).await;
    assert_eq!(doc["status"], "completed", "{doc}");
    let accounts: Vec<&str> = doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account_id"].as_str().unwrap())
        .collect();
    assert_eq!(accounts, vec![TENANT_A]);
    assert_eq!(
        b_rows(&app).await,
        before,
        "a deauthorized account's rows are kept"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_refused_account_fails_alone_and_leaves_the_circuit_closed() {
    // One failed request would open the app's circuit if a refused account counted.
    let app = spawn_app(Setup {
        extra_toml: "[circuit_breaker]\nfailure_threshold = 1\n".into(),
        ..platform("\"all\"", false)
    })
    .await;
    let fake = app.fake();
    let job_id = start_full_job(&app).await;
    // B is disconnected without a word: its requests answer 403 from now on.
    assert!(fake.disconnect(TENANT_B));
    drain(&app).await;
    let doc = app.wait_job(&job_id).await;
    assert_eq!(doc["status"], "failed", "{doc}");
    let error = doc["error_message"].as_str().unwrap();
    assert!(
        error.contains(TENANT_B),
        "the error names the account: {error}"
    );
    let by_account: BTreeMap<String, (i64, i64)> = doc["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["account_id"].as_str().unwrap().to_owned(),
                (
                    a["completed"].as_i64().unwrap(),
                    a["failed"].as_i64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(by_account[TENANT_A], (2, 0), "{doc}");
    assert_eq!(by_account[TENANT_B], (0, 2), "{doc}");
    // Each of B's tasks failed at its first refusal, not after retries.
    let attempts: i64 = app
        .db()
        .await
        .query_one(
            "SELECT max(attempts)::int8 FROM supasaasy.sync_tasks WHERE account_id = $1",
            &[&TENANT_B],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 1);
    let health: Value = app
        .http
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["apps"][0]["circuit"], "closed", "{health}");
    assert_eq!(
        per_account(&app, "stripe_customers").await.get(TENANT_A),
        Some(&120)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_run_of_an_account_resumes_without_duplicates_or_gaps() {
    let app = spawn_app(platform("\"all\"", false)).await;
    let fake = app.fake();
    start_full_job(&app).await;
    // A's customers are claimed first among the accounts' tasks (oldest first, then by id):
    // make sure of it, then let the worker die after a page of them is committed.
    let db = app.db().await;
    db.execute(
        "UPDATE supasaasy.sync_tasks SET run_after = now() + interval '1 hour'
          WHERE account_id <> '' AND NOT (account_id = $1 AND resource_type = 'customer')",
        &[&TENANT_A],
    )
    .await
    .unwrap();
    fake.set_latency(Duration::from_millis(150));
    let ctx = app.ctx.clone();
    let running = tokio::spawn(async move {
        Worker::new(ctx)
            .try_execute_task(&CancellationToken::new())
            .await
    });
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let pages: i32 = db
                .query_one(
                    "SELECT pages FROM supasaasy.sync_tasks WHERE account_id = $1 AND resource_type = 'customer'",
                    &[&TENANT_A],
                )
                .await
                .unwrap()
                .get(0);
            if pages > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a page is committed");
    running.abort();
    let _ = running.await;
    let written: i64 = db
        .query_one(
            "SELECT count(*) FROM supasaasy.entities WHERE account_id = $1 AND collection_key = 'stripe_customer'",
            &[&TENANT_A],
        )
        .await
        .unwrap()
        .get(0);
    assert!(written < 120, "the run died part-way: {written}");
    // Its lease runs out; another worker takes the task over where it stood.
    db.execute(
        "UPDATE supasaasy.sync_tasks SET lease_expires_at = now() - interval '1 second', run_after = now()
          WHERE status IN ('processing', 'pending')",
        &[],
    )
    .await
    .unwrap();
    fake.set_latency(Duration::ZERO);
    drain(&app).await;
    let task = db
        .query_one(
            "SELECT status, attempts, entity_count FROM supasaasy.sync_tasks
              WHERE account_id = $1 AND resource_type = 'customer'",
            &[&TENANT_A],
        )
        .await
        .unwrap();
    assert_eq!(task.get::<_, String>(0), "completed");
    assert_eq!(task.get::<_, i32>(1), 2, "taken over once");
    assert_eq!(
        per_account(&app, "stripe_customers").await.get(TENANT_A),
        Some(&120)
    );
    app.stop().await;
}

#[tokio::test]
async fn enabling_connect_gives_the_older_rows_the_platforms_id() {
    // The platform's app ran without Connect first: its rows carry no account.
    let mut before = platform("\"all\"", true);
    before.app_extra = "sync_resources = [\"customer\", \"coupon\"]\n".into();
    let app = spawn_app(before).await;
    let db_url = app.ctx.config.database.url.expose().to_string();
    let doc = full_sync(&app).await;
    assert_eq!(doc["status"], "completed", "{doc}");
    assert!(doc.get("accounts").is_none(), "{doc}");
    let unowned: BTreeMap<String, i64> = [(String::new(), 5)].into_iter().collect();
    assert_eq!(per_account(&app, "stripe_customers").await, unowned);
    app.stop().await;

    // Connect enabled: the first thing the app writes waits for its rows to be given its id.
    let app = spawn_app(Setup {
        database_url: Some(db_url),
        ..platform("\"all\"", true)
    })
    .await;
    let own = app.fake().platform_account_id().to_owned();
    let doc = full_sync(&app).await;
    assert_eq!(doc["status"], "completed", "{doc}");
    let expected: BTreeMap<String, i64> = [
        (own.clone(), 5),
        (TENANT_A.into(), 120),
        (TENANT_B.into(), 30),
    ]
    .into_iter()
    .collect();
    assert_eq!(per_account(&app, "stripe_customers").await, expected);
    let recorded: String = app
        .db()
        .await
        .query_one(
            "SELECT account_id FROM supasaasy.app_accounts WHERE app_key = $1",
            &[&PLATFORM],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, own);
    let left: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.entities WHERE app_key = $1 AND account_id = ''",
            &[&PLATFORM],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        left, 0,
        "no row is left without its account, and none is written twice"
    );
    app.stop().await;
}
