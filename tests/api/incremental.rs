//! Incremental sync from Stripe's events: updates to old objects, deletions and cancellations are
//! caught; no cursor or a cursor past the events' retention runs a full sync and says so.

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::{Counts, StripeData};

use crate::helpers::{fake_ids, spawn_app, Setup, TestApp};

const COLLECTIONS: [(&str, &str); 6] = [
    ("customer", "stripe_customer"),
    ("product", "stripe_product"),
    ("price", "stripe_price"),
    ("plan", "stripe_plan"),
    ("subscription", "stripe_subscription"),
    ("subscription_item", "stripe_subscription_item"),
];

fn data() -> StripeData {
    StripeData::generate(&Counts {
        customers: 320,
        products: 5,
        prices_per_product: 2,
        subscriptions: 150,
        items_per_subscription: 2,
        canceled_every: 0,
        ..Counts::default()
    })
}

async fn incremental(app: &TestApp) -> Value {
    app.sync(json!({"app_key": "stripe_test", "immediate": true}), 200)
        .await
}

async fn assert_parity(app: &TestApp) {
    for (resource, collection) in COLLECTIONS {
        let want = fake_ids(app.fake(), resource);
        let got = app.live_ids("stripe_test", collection).await;
        let extra: Vec<_> = got.iter().filter(|i| !want.contains(i)).collect();
        let missing: Vec<_> = want.iter().filter(|i| !got.contains(i)).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{resource}: extra {extra:?}, missing {missing:?}"
        );
        for id in want.iter().take(40) {
            let row = app.row("stripe_test", collection, id).await.unwrap().0;
            assert_eq!(
                row,
                app.fake().get(resource, id).unwrap(),
                "{resource} {id}"
            );
        }
    }
}

#[tokio::test]
async fn incremental_sync_catches_updates_deletions_and_cancellations() {
    let app = spawn_app(Setup::classic(data())).await;

    // No cursor yet: the first incremental run is a full sync, and says so.
    let first = incremental(&app).await;
    assert_eq!(first["status"], "completed", "{first}");
    let notes = first["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 5, "{first}");
    assert!(notes[0]
        .as_str()
        .unwrap()
        .contains("no incremental cursor yet: ran a full sync"));
    assert_parity(&app).await;

    // Changes an hour ago (events settle for a minute before they are read).
    let now = chrono::Utc::now().timestamp();
    app.set_cursors(now - 3600).await;
    let fake = app.fake();
    fake.set_clock(Some(now - 1800));
    let customers = fake.ids("customer");
    let oldest = customers.last().unwrap().clone();
    fake.update("customer", &oldest, |c| {
        c["email"] = json!("moved@example.com")
    });
    fake.delete("customer", &customers[3]);
    let mut new_customer = fake.get("customer", &customers[0]).unwrap();
    new_customer["id"] = json!("cus_brandnew0001");
    new_customer["created"] = json!(now - 1800);
    fake.upsert("customer", new_customer);
    let subs = fake.ids("subscription");
    let old_sub = subs.last().unwrap().clone();
    fake.update("subscription", &old_sub, |s| {
        s["status"] = json!("canceled");
        s["canceled_at"] = json!(now - 1800);
    });
    let prod = fake.ids("product")[2].clone();
    fake.update("product", &prod, |p| p["active"] = json!(false));
    let before_requests = fake.requests_to("/v1/customers");

    let second = incremental(&app).await;
    assert_eq!(second["status"], "completed", "{second}");
    assert!(second["notes"].as_array().unwrap().is_empty(), "{second}");
    assert_parity(&app).await;
    assert!(
        app.row("stripe_test", "stripe_customer", &customers[3])
            .await
            .unwrap()
            .1,
        "deleted customer is a tombstone"
    );
    let email: String = app
        .db()
        .await
        .query_one(
            "SELECT email FROM supasaasy.stripe_customers WHERE external_id = $1",
            &[&oldest],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        email, "moved@example.com",
        "an update to the oldest customer arrives"
    );
    assert_eq!(
        app.fake().requests_to("/v1/customers"),
        before_requests,
        "no listing was walked"
    );

    // The cursor moved to the window's end; a second run reads nothing new and changes nothing.
    let cursor: String = app
        .db()
        .await
        .query_one(
            "SELECT incremental_cursor FROM supasaasy.sync_state WHERE resource_type = 'customer'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let cursor: i64 = cursor.parse().unwrap();
    assert!(
        cursor > now - 120 && cursor <= now,
        "cursor {cursor}, now {now}"
    );
    let third = incremental(&app).await;
    assert_eq!(third["status"], "completed");
    assert_parity(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_cursor_older_than_the_events_retention_runs_a_full_sync() {
    let app = spawn_app(Setup::classic(data())).await;
    let first = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "immediate": true}),
            200,
        )
        .await;
    assert_eq!(first["status"], "completed");
    // A month passes; a customer deleted meanwhile has no event left to tell.
    let gone = app.fake().ids("customer")[7].clone();
    app.fake()
        .set_clock(Some(chrono::Utc::now().timestamp() - 31 * 86_400));
    app.fake().delete("customer", &gone);
    app.set_cursors(chrono::Utc::now().timestamp() - 30 * 86_400)
        .await;

    let job = incremental(&app).await;
    assert_eq!(job["status"], "completed", "{job}");
    let notes = job["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 5);
    assert!(
        notes
            .iter()
            .all(|n| n.as_str().unwrap().contains("older than 29 days")),
        "{job}"
    );
    assert!(
        app.row("stripe_test", "stripe_customer", &gone)
            .await
            .unwrap()
            .1,
        "swept by the full run"
    );
    assert_parity(&app).await;
    app.stop().await;
}
