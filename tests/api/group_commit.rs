//! Group commit of webhooks: deliveries that arrive together are applied in one transaction, each
//! answered after that commit, and a delivery the database refuses fails alone.
//!
//! The daemon runs with one lane (a pool of 4). A test holds the lock of one customer, so the lane
//! stays inside the transaction of a first delivery about it while the others queue behind; then
//! it lets go, and the queued deliveries form the next batch.

use std::collections::HashSet;

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::{Counts, StripeData};

use crate::helpers::{sign_now, spawn_app, Setup, TestApp};

async fn app() -> TestApp {
    spawn_app(Setup {
        workers: false,
        extra_toml: "[database]\npool_size = 4\n".into(),
        ..Setup::stripe(StripeData::generate(&Counts {
            customers: 20,
            ..Counts::default()
        }))
    })
    .await
}

/// A `customer.updated` event for `id` with `name`, created `at`.
fn updated(app: &TestApp, event_id: &str, id: &str, name: &str, at: i64) -> Value {
    let mut customer = app.fake().get("customer", id).unwrap();
    customer["name"] = json!(name);
    json!({
        "id": event_id,
        "object": "event",
        "type": "customer.updated",
        "created": at,
        "data": {"object": customer},
    })
}

/// Holds the lock of customer `id` in an open transaction until the returned client rolls back,
/// then delivers `first` about it and waits until the lane is blocked on that lock.
async fn block_lane(
    app: &TestApp,
    id: &str,
    first: Value,
) -> (
    deadpool_postgres::Object,
    tokio::task::JoinHandle<(u16, Value)>,
) {
    let blocker = app.db().await;
    blocker.batch_execute("BEGIN").await.unwrap();
    let key = format!("stripe_test\u{1f}\u{1f}stripe_customer\u{1f}{id}");
    blocker
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await
        .unwrap();
    let base = app.base.clone();
    let first = tokio::spawn(deliver(base, first));
    app.wait_for_count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        .await;
    (blocker, first)
}

/// Delivers `events` at once and waits until all of them are queued behind the blocked lane.
async fn queue(app: &TestApp, events: Vec<Value>) -> Vec<tokio::task::JoinHandle<(u16, Value)>> {
    let n = events.len();
    let handles = events
        .into_iter()
        .map(|e| tokio::spawn(deliver(app.base.clone(), e)))
        .collect();
    while app.ctx.webhooks.queued() < n {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    handles
}

async fn deliver(base: String, event: Value) -> (u16, Value) {
    let body = serde_json::to_vec(&event).unwrap();
    let sig = sign_now("stripe_test", &body);
    let resp = reqwest::Client::new()
        .post(format!("{base}/webhook/stripe_test"))
        .header("Stripe-Signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn received_at(app: &TestApp, event_ids: &[&str]) -> Vec<chrono::DateTime<chrono::Utc>> {
    let ids: Vec<String> = event_ids.iter().map(|s| s.to_string()).collect();
    app.db()
        .await
        .query(
            "SELECT received_at FROM supasaasy.provider_events WHERE event_id = ANY($1)",
            &[&ids],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn deliveries_that_arrive_together_commit_together() {
    let app = app().await;
    let ids = app.fake().ids("customer");
    let now = chrono::Utc::now().timestamp();
    let (blocker, first) = block_lane(
        &app,
        &ids[0],
        updated(&app, "evt_first", &ids[0], "First", now - 100),
    )
    .await;

    // Ten customers once each, one delivered twice, and one customer twice at two seconds.
    let mut events: Vec<Value> = (1..=10)
        .map(|i| {
            updated(
                &app,
                &format!("evt_{i}"),
                &ids[i],
                &format!("Batch {i}"),
                now - 50,
            )
        })
        .collect();
    events.push(updated(&app, "evt_3", &ids[3], "Batch 3", now - 50));
    events.push(updated(&app, "evt_older", &ids[11], "Older", now - 60));
    events.push(updated(&app, "evt_newer", &ids[11], "Newer", now - 40));
    let queued = queue(&app, events).await;
    assert!(!first.is_finished(), "the lane waits on the lock");

    blocker.batch_execute("ROLLBACK").await.unwrap();
    let (status, answer) = first.await.unwrap();
    assert_eq!((status, answer["action"].as_str()), (200, Some("applied")));
    let mut actions = Vec::new();
    for handle in queued {
        let (status, answer) = handle.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        actions.push((
            answer["event_id"].as_str().unwrap().to_string(),
            answer["action"].as_str().unwrap().to_string(),
        ));
    }
    let evt_3: Vec<&str> = actions
        .iter()
        .filter(|(id, _)| id == "evt_3")
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(
        evt_3 == ["applied", "duplicate"] || evt_3 == ["duplicate", "applied"],
        "a repeat within the batch is a duplicate: {evt_3:?}"
    );

    for (i, id) in ids.iter().enumerate().take(11).skip(1) {
        let (payload, deleted) = app.row("stripe_test", "stripe_customer", id).await.unwrap();
        assert_eq!(payload["name"], json!(format!("Batch {i}")));
        assert!(!deleted);
    }
    let (payload, _) = app
        .row("stripe_test", "stripe_customer", &ids[11])
        .await
        .unwrap();
    assert_eq!(
        payload["name"], "Newer",
        "the newer state wins in any order"
    );
    let (payload, _) = app
        .row("stripe_test", "stripe_customer", &ids[0])
        .await
        .unwrap();
    assert_eq!(payload["name"], "First");

    // One transaction: the queued events were recorded at one instant, after the first's.
    let batch = received_at(
        &app,
        &[
            "evt_1",
            "evt_2",
            "evt_3",
            "evt_4",
            "evt_5",
            "evt_6",
            "evt_7",
            "evt_8",
            "evt_9",
            "evt_10",
            "evt_older",
            "evt_newer",
        ],
    )
    .await;
    assert_eq!(batch.len(), 12, "each event id recorded once");
    let instants: HashSet<_> = batch.iter().collect();
    assert_eq!(
        instants.len(),
        1,
        "the queued deliveries shared a transaction"
    );
    let first_at = received_at(&app, &["evt_first"]).await;
    assert!(first_at[0] < batch[0]);
}

#[tokio::test]
async fn a_delivery_the_database_refuses_is_quarantined_alone() {
    let app = app().await;
    let ids = app.fake().ids("customer");
    let now = chrono::Utc::now().timestamp();
    let (blocker, first) = block_lane(
        &app,
        &ids[0],
        updated(&app, "evt_first", &ids[0], "First", now - 100),
    )
    .await;
    // Postgres cannot hold U+0000 in a `text`: this delivery's object id fails in the database.
    let mut refused = updated(&app, "evt_refused", &ids[1], "Refused", now - 50);
    refused["data"]["object"]["id"] = json!("cus_nul\u{0}here");
    let events = vec![
        updated(&app, "evt_good_a", &ids[2], "Good A", now - 50),
        refused.clone(),
        updated(&app, "evt_good_b", &ids[3], "Good B", now - 50),
    ];
    let queued = queue(&app, events).await;
    blocker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(first.await.unwrap().0, 200);
    let mut actions = Vec::new();
    for handle in queued {
        let (status, answer) = handle.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        actions.push(answer["action"].as_str().unwrap().to_owned());
    }
    assert_eq!(actions, ["applied", "quarantined", "applied"]);
    for (id, name) in [(&ids[2], "Good A"), (&ids[3], "Good B")] {
        let row = app.row("stripe_test", "stripe_customer", id).await.unwrap();
        assert_eq!(row.0["name"], name);
    }
    assert_eq!(
        received_at(&app, &["evt_refused"]).await.len(),
        1,
        "a quarantined delivery is recorded as seen"
    );
    // Delivered again, it is a duplicate: the object waits for the next run, not for redeliveries.
    let (status, answer) = deliver(app.base.clone(), refused).await;
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("duplicate"))
    );
}
