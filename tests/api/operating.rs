//! The integration events log and the circuit breaker: every webhook outcome and job end is
//! recorded and filterable, the summary counts everything that matched; a provider that keeps
//! failing opens its app's circuit (and only its app's), `/health` shows it, a probe closes it.

use std::time::Duration;

use serde_json::{json, Value};
use supasaasy::task::TaskOutcome;
use supasaasy::worker::Worker;
use supasaasy_testkit::fake_stripe::{stripe_signature, Counts, StripeData};
use tokio_util::sync::CancellationToken;

use crate::helpers::{spawn_app, webhook_secret, Setup, TestApp, ADMIN_KEY};

fn data(customers: usize) -> StripeData {
    StripeData::generate(&Counts {
        customers,
        ..Counts::default()
    })
}

async fn events(app: &TestApp, query: &str) -> Value {
    let resp = app
        .admin(reqwest::Method::GET, &format!("/events{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "/events{query}");
    resp.json().await.unwrap()
}

fn types_and_outcomes(page: &Value) -> Vec<(String, String)> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_webhook_outcome_and_job_end_is_in_the_events_log() {
    let app = spawn_app(Setup::stripe(data(20))).await;
    let fake = app.fake();
    let ids = fake.ids("customer");

    // applied, then the same event again (duplicate)
    fake.update("customer", &ids[0], |c| c["name"] = json!("First"));
    let first = fake.last_event().unwrap();
    assert_eq!(
        app.deliver("stripe_test", &first).await.1["action"],
        "applied"
    );
    assert_eq!(
        app.deliver("stripe_test", &first).await.1["action"],
        "duplicate"
    );
    // stale: an older event for an object the mirror holds a newer state of
    fake.update("customer", &ids[1], |c| c["name"] = json!("Old"));
    let mut older = fake.last_event().unwrap();
    fake.advance_clock(10);
    fake.update("customer", &ids[1], |c| c["name"] = json!("New"));
    let newer = fake.last_event().unwrap();
    assert_eq!(
        app.deliver("stripe_test", &newer).await.1["action"],
        "applied"
    );
    older["id"] = json!("evt_older_one");
    assert_eq!(
        app.deliver("stripe_test", &older).await.1["action"],
        "stale"
    );
    // ignored: a type the daemon does not map
    let unmapped = json!({"id": "evt_unmapped", "object": "event", "type": "balance.available",
        "created": fake.now(), "data": {"object": {"object": "balance"}}});
    assert_eq!(
        app.deliver("stripe_test", &unmapped).await.1["action"],
        "ignored"
    );
    // rejected: a wrong signature, and a signed body that is not an event
    let body = serde_json::to_vec(&first).unwrap();
    let now = chrono::Utc::now().timestamp();
    let forged = stripe_signature("whsec_forged", now, &body);
    assert_eq!(
        app.post_webhook("stripe_test", &body, Some(&forged))
            .await
            .0,
        401
    );
    let garbage = b"{\"not\": \"an event\"}";
    let signed = stripe_signature(&webhook_secret("stripe_test"), now, garbage);
    assert_eq!(
        app.post_webhook("stripe_test", garbage, Some(&signed))
            .await
            .0,
        400
    );
    // a job that starts and completes
    let job = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    let job_id = job["job_id"].as_str().unwrap().to_string();
    assert_eq!(app.wait_job(&job_id).await["status"], "completed");

    let all = events(&app, "?limit=1000").await;
    let seen = types_and_outcomes(&all);
    for expected in [
        ("customer.updated", "applied"),
        ("customer.updated", "duplicate"),
        ("customer.updated", "stale"),
        ("balance.available", "ignored"),
        ("webhook.rejected", "rejected"),
        ("sync.started", "started"),
        ("sync.completed", "completed"),
    ] {
        assert!(
            seen.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} missing from {seen:?}"
        );
    }
    let total = all["pagination"]["total"].as_i64().unwrap();
    assert_eq!(total as usize, seen.len());
    // Newest first.
    let times: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["created_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    // Details say enough to act on, and never hold a secret or a signature.
    let applied = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["outcome"] == "applied" && e["detail"]["event_id"] == first["id"])
        .expect("the first event, applied");
    assert_eq!(applied["detail"]["object_id"], json!(ids[0]));
    assert_eq!(applied["service"], "stripe");
    assert_eq!(applied["app_key"], "stripe_test");
    let rejected: Vec<&Value> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), 2);
    assert!(rejected.iter().all(|e| e["detail"]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty())));
    let completed = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "sync.completed")
        .unwrap();
    assert_eq!(completed["detail"]["job_id"], json!(job_id));
    assert_eq!(completed["detail"]["processed_entities"], 20);
    let text = all.to_string();
    for secret in [
        webhook_secret("stripe_test").as_str(),
        fake.api_key(),
        ADMIN_KEY,
        forged.as_str(),
        signed.as_str(),
    ] {
        assert!(!text.contains(secret), "a secret reached the events log");
    }

    // Filters, each alone and combined; the summary counts everything that matched.
    let page = events(&app, "?event_type=customer.updated&limit=2").await;
    assert_eq!(page["pagination"]["total"], 4);
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["summary"]["event_types"]["customer.updated"], 4);
    assert_eq!(page["summary"]["services"]["stripe"], 4);
    assert_eq!(page["filters"]["event_type"], "customer.updated");
    let rest = events(&app, "?event_type=customer.updated&limit=3&offset=2").await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 2);
    assert_ne!(rest["events"][0]["id"], page["events"][1]["id"]);
    assert_eq!(rest["summary"], page["summary"]);
    let ours = events(&app, "?service=supasaasy").await;
    assert!(types_and_outcomes(&ours)
        .iter()
        .all(|(t, _)| t.starts_with("sync.")));
    assert_eq!(ours["pagination"]["total"], 2);
    let other_app = events(&app, "?app_key=stripe_other").await;
    assert_eq!(other_app["pagination"]["total"], 0);
    assert_eq!(other_app["summary"]["services"], json!({}));
    let future = events(&app, "?since=2999-01-01T00:00:00Z").await;
    assert_eq!(future["pagination"]["total"], 0);
    let past = events(&app, "?until=2000-01-01T00:00:00Z").await;
    assert_eq!(past["pagination"]["total"], 0);
    let window = events(
        &app,
        &format!(
            "?since={}&until=2999-01-01T00:00:00Z&app_key=stripe_test&service=stripe",
            (chrono::Utc::now() - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ")
        ),
    )
    .await;
    assert_eq!(
        window["pagination"]["total"].as_i64().unwrap(),
        total - 2,
        "everything but the two job events"
    );

    // Admin only; bad filters are named.
    let resp = app
        .http
        .get(format!("{}/events", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    for bad in [
        "?limit=0",
        "?limit=1001",
        "?offset=-1",
        "?since=yesterday",
        "?service=paypal",
        "?colour=red",
    ] {
        let resp = app
            .admin(reqwest::Method::GET, &format!("/events{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_string());
    }
    app.stop().await;
}

#[tokio::test]
async fn a_failed_job_is_recorded_with_its_error() {
    let app = spawn_app(Setup {
        worker_toml: "retry_base_ms = 1\nmax_attempts = 1\n".into(),
        ..Setup::stripe(data(5))
    })
    .await;
    app.fake().fail_next(1_000_000, 400);
    let job = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    let job_id = job["job_id"].as_str().unwrap().to_string();
    assert_eq!(app.wait_job(&job_id).await["status"], "failed");
    let failed = events(&app, "?event_type=sync.failed").await;
    assert_eq!(failed["pagination"]["total"], 1);
    let event = &failed["events"][0];
    assert_eq!(event["outcome"], "failed");
    assert_eq!(event["detail"]["job_id"], json!(job_id));
    assert!(
        event["detail"]["error"].as_str().unwrap().contains("400"),
        "{event}"
    );
    // Cancelling a job is recorded too.
    app.fake().fail_next(0, 200);
    app.fake().set_latency(Duration::from_millis(300));
    let job = app
        .sync(json!({"app_key": "stripe_test", "mode": "full"}), 202)
        .await;
    let job_id = job["job_id"].as_str().unwrap();
    let resp = app
        .admin(reqwest::Method::POST, &format!("/jobs/{job_id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cancelled = events(&app, "?event_type=sync.cancelled").await;
    assert_eq!(cancelled["events"][0]["detail"]["job_id"], json!(job_id));
    app.stop().await;
}

async fn run_once(app: &TestApp) -> Option<TaskOutcome> {
    Worker::new(app.ctx.clone())
        .try_execute_task(&CancellationToken::new())
        .await
        .unwrap()
}

async fn health(app: &TestApp) -> (u16, Value) {
    let resp = app
        .http
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

fn app_health<'a>(health: &'a Value, app_key: &str) -> &'a Value {
    health["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app_key"] == app_key)
        .unwrap()
}

#[tokio::test]
async fn a_failing_provider_opens_its_apps_circuit_and_a_probe_closes_it() {
    let app = spawn_app(Setup {
        apps: vec![
            ("stripe_down".into(), data(30)),
            ("stripe_up".into(), data(30)),
        ],
        workers: false,
        worker_toml: "retry_base_ms = 1\nmax_attempts = 10\n".into(),
        extra_toml: "[circuit_breaker]\nfailure_threshold = 2\nopen_seconds = 1\n".into(),
        ..Setup::default()
    })
    .await;
    let down = &app.stripes[0].fake;
    let (status, body) = health(&app).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    assert_eq!(app_health(&body, "stripe_down")["circuit"], "closed");

    down.fail_next(1_000_000, 503);
    let job = app
        .sync(
            json!({"app_key": "stripe_down", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    let job_id = job["job_id"].as_str().unwrap().to_string();
    // Each run retries in place, then counts one failure and hands the task back.
    for _ in 0..2 {
        let outcome = run_once(&app).await.expect("the task is due");
        assert!(
            matches!(outcome, TaskOutcome::Retrying { .. }),
            "{outcome:?}"
        );
        app.db()
            .await
            .execute("UPDATE supasaasy.sync_tasks SET run_after = now()", &[])
            .await
            .unwrap();
    }
    let (status, body) = health(&app).await;
    assert_eq!(status, 200, "an open circuit is not a reason to restart");
    assert_eq!(body["status"], "degraded");
    let down_health = app_health(&body, "stripe_down");
    assert_eq!(down_health["circuit"], "open");
    // Publicly a category, without the provider's URL; the message with the admin key.
    assert_eq!(down_health["last_error"], "provider server error");
    let admin: Value = app
        .admin(reqwest::Method::GET, "/health")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let detail = app_health(&admin, "stripe_down")["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("503"), "{detail}");
    assert!(!body.to_string().contains("http://"), "{body}");
    assert_eq!(app_health(&body, "stripe_up")["circuit"], "closed");
    let opened = events(&app, "?event_type=circuit.opened").await;
    assert_eq!(opened["pagination"]["total"], 1);
    assert_eq!(opened["events"][0]["app_key"], "stripe_down");
    assert!(opened["events"][0]["detail"]["error"]
        .as_str()
        .unwrap()
        .contains("503"));

    // While open, the app's tasks wait (not claimed, no attempt spent); other apps run.
    let requests = down.requests();
    assert_eq!(run_once(&app).await, None);
    let other = app
        .sync(
            json!({"app_key": "stripe_up", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    assert!(matches!(
        run_once(&app).await,
        Some(TaskOutcome::Completed { .. })
    ));
    assert_eq!(
        app.wait_job(other["job_id"].as_str().unwrap()).await["status"],
        "completed"
    );
    assert_eq!(
        down.requests(),
        requests,
        "no request while the circuit is open"
    );
    let attempts: i32 = app
        .db()
        .await
        .query_one(
            "SELECT attempts FROM supasaasy.sync_tasks WHERE job_id = $1::text::uuid",
            &[&job_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 2);
    // Webhooks for the app are still received and applied.
    let id = down.ids("customer")[0].clone();
    down.update("customer", &id, |c| c["name"] = json!("Still Applied"));
    let (status, ack) = app
        .deliver("stripe_down", &down.last_event().unwrap())
        .await;
    assert_eq!((status, ack["action"].as_str()), (200, Some("applied")));

    // After open_seconds one probe decides: the provider is back, so the circuit closes.
    down.fail_next(0, 200);
    // The open period passes on the process's clock, not the test's time.
    app.ctx.ops.clock.advance(Duration::from_millis(1100));
    let outcome = run_once(&app).await.expect("the probe claims the task");
    assert!(
        matches!(outcome, TaskOutcome::Completed { .. }),
        "{outcome:?}"
    );
    assert_eq!(app.wait_job(&job_id).await["status"], "completed");
    // The webhook's event is in the log /health reads.
    app.ctx.ops.events.flush(Duration::from_secs(5)).await;
    let (_, body) = health(&app).await;
    assert_eq!(body["status"], "ok");
    assert_eq!(app_health(&body, "stripe_down")["circuit"], "closed");
    assert!(app_health(&body, "stripe_down")["last_sync_at"].is_string());
    assert!(app_health(&body, "stripe_down")["last_webhook_at"].is_string());
    let closed = events(&app, "?event_type=circuit.closed").await;
    assert_eq!(closed["pagination"]["total"], 1);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_probe_opens_the_circuit_again_and_a_rejected_key_counts() {
    let app = spawn_app(Setup {
        apps: vec![(
            "stripe_test".into(),
            data(10).with_api_key("sk_test_the_right_key"),
        )],
        workers: false,
        worker_toml: "retry_base_ms = 1\nmax_attempts = 10\n".into(),
        extra_toml: "[circuit_breaker]\nfailure_threshold = 1\nopen_seconds = 1\n".into(),
        ..Setup::default()
    })
    .await;
    app.fake().fail_next(1_000_000, 401);
    let job = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    // A rejected key fails the task at once (no retry helps) and opens the circuit.
    let outcome = run_once(&app).await.expect("due");
    assert!(matches!(outcome, TaskOutcome::Failed { .. }), "{outcome:?}");
    assert_eq!(
        app_health(&health(&app).await.1, "stripe_test")["circuit"],
        "open"
    );
    // The next job waits; after the open period its probe fails and the circuit opens again.
    app.fake().fail_next(1_000_000, 500);
    let again = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    assert_eq!(run_once(&app).await, None);
    // The open period passes on the process's clock, not the test's time.
    app.ctx.ops.clock.advance(Duration::from_millis(1100));
    let outcome = run_once(&app).await.expect("the probe claims the task");
    assert!(
        matches!(
            outcome,
            TaskOutcome::Retrying { .. } | TaskOutcome::CircuitOpen
        ),
        "{outcome:?}"
    );
    assert_eq!(
        app_health(&health(&app).await.1, "stripe_test")["circuit"],
        "open"
    );
    let opened = events(&app, "?event_type=circuit.opened").await;
    assert_eq!(opened["pagination"]["total"], 2);
    let _ = (job, again);
    app.stop().await;
}

#[tokio::test]
async fn daemons_sharing_a_database_agree_on_an_open_circuit() {
    let first = spawn_app(Setup {
        workers: false,
        worker_toml: "retry_base_ms = 1\nmax_attempts = 10\n".into(),
        extra_toml: "[circuit_breaker]\nfailure_threshold = 1\nopen_seconds = 30\n".into(),
        ..Setup::stripe(data(5))
    })
    .await;
    let url = first.ctx.config.database.url.expose().to_string();
    let second = spawn_app(Setup {
        workers: false,
        database_url: Some(url),
        extra_toml: "[circuit_breaker]\nfailure_threshold = 1\nopen_seconds = 30\n".into(),
        ..Setup::stripe(data(5))
    })
    .await;
    first.fake().fail_next(1_000_000, 502);
    first
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    let outcome = run_once(&first).await.expect("due");
    assert!(
        matches!(outcome, TaskOutcome::Retrying { .. }),
        "{outcome:?}"
    );
    let breakers = &second.ctx.ops.breakers;
    let mut adopted = false;
    for _ in 0..50 {
        breakers.adopt_shared().await.unwrap();
        if breakers.state("stripe_test").as_str() == "open" {
            adopted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(adopted, "the second daemon adopts the open circuit");
    assert!(breakers.last_error("stripe_test").unwrap().contains("502"));
    // The second daemon does not claim the app's task either.
    assert_eq!(run_once(&second).await, None);
    second.stop().await;
    first.stop().await;
}

#[tokio::test]
async fn old_events_are_deleted_in_small_batches() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(data(1))
    })
    .await;
    let db = app.db().await;
    db.batch_execute(
        "INSERT INTO supasaasy.integration_events (app_key, service, event_type, outcome, created_at)
         SELECT 'stripe_test', 'stripe', 'customer.updated', 'applied', now() - make_interval(days => d) + interval '12 hours'
           FROM generate_series(1, 40) AS d",
    )
    .await
    .unwrap();
    let pruned = supasaasy::store::integration_events::prune(&**db, 30, 3)
        .await
        .unwrap();
    assert_eq!(
        pruned, 10,
        "the 10 events older than 30 days, three at a time"
    );
    let left = events(&app, "?limit=1000").await;
    assert_eq!(left["pagination"]["total"], 30);
    app.stop().await;
}
