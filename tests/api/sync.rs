//! Full syncs end to end: parity with the provider, apps kept apart, the views, the sweep.

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::{Counts, StripeData};

use crate::helpers::{fake_ids, nth_created, spawn_app, Setup};

/// Every Stripe resource and the collection its rows land in.
const COLLECTIONS: [(&str, &str); 6] = [
    ("customer", "stripe_customer"),
    ("product", "stripe_product"),
    ("price", "stripe_price"),
    ("plan", "stripe_plan"),
    ("subscription", "stripe_subscription"),
    ("subscription_item", "stripe_subscription_item"),
];

fn counts(customers: usize, subscriptions: usize) -> Counts {
    Counts {
        customers,
        products: 12,
        prices_per_product: 3,
        subscriptions,
        items_per_subscription: 2,
        canceled_every: 5,
        ..Counts::default()
    }
}

#[tokio::test]
async fn full_sync_mirrors_every_resource_exactly() {
    let app = spawn_app(Setup::classic(StripeData::generate(&counts(2500, 1200)))).await;
    // Two subscriptions with more items than Stripe embeds (10): the rest must be fetched.
    let subs = app.fake().ids("subscription");
    let template = app
        .fake()
        .get("subscription_item", &app.fake().ids("subscription_item")[0])
        .unwrap();
    for sub in &subs[..2] {
        let items: Vec<Value> = (0..23)
            .map(|i| {
                let mut item = template.clone();
                item["id"] = json!(format!("si_many{i}{}", &sub[4..]));
                item["subscription"] = json!(sub);
                item
            })
            .collect();
        app.fake().set_subscription_items(sub, items);
    }

    let done = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "immediate": true}),
            200,
        )
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["progress_percentage"], 100);
    assert_eq!(done["completed_tasks"], 5);
    assert!(done["completed_at"].is_string());

    for (resource, collection) in COLLECTIONS {
        let want = fake_ids(app.fake(), resource);
        assert!(!want.is_empty(), "the fake serves some {resource}");
        assert_eq!(
            app.live_ids("stripe_test", collection).await,
            want,
            "{resource} parity"
        );
    }
    let all_objects: usize = COLLECTIONS
        .iter()
        .map(|(r, _)| app.fake().ids(r).len())
        .sum();
    assert_eq!(done["processed_entities"], all_objects as i64);

    // Payloads are the provider's, byte for byte in meaning.
    let db = app.db().await;
    for (resource, collection) in COLLECTIONS {
        let id = &app.fake().ids(resource)[7];
        let row = db
            .query_one(
                "SELECT raw_payload, api_version FROM supasaasy.entities
                  WHERE app_key = 'stripe_test' AND collection_key = $1 AND external_id = $2",
                &[&collection, id],
            )
            .await
            .unwrap();
        let payload: Value = row.get(0);
        assert_eq!(
            payload,
            app.fake().get(resource, id).unwrap(),
            "{resource} {id}"
        );
        assert_eq!(
            row.get::<_, String>(1),
            supasaasy_stripe::STRIPE_API_VERSION
        );
    }

    // The README queries run as written, and canceled subscriptions are there (status=all).
    let active: i64 = db
        .query_one("SELECT count(*) FROM (SELECT * FROM supasaasy.stripe_subscriptions WHERE status = 'active') s", &[])
        .await
        .unwrap()
        .get(0);
    let canceled: i64 = db
        .query_one(
            "SELECT count(*) FROM supasaasy.stripe_subscriptions WHERE status = 'canceled'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        active > 0 && canceled > 0,
        "active {active}, canceled {canceled}"
    );
    let email = db
        .query_one(
            "SELECT email FROM supasaasy.stripe_customers WHERE email IS NOT NULL LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get::<_, String>(0);
    let found = db
        .query(
            &format!("SELECT * FROM supasaasy.stripe_customers WHERE email = '{email}'"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    let joined = db
        .query(
            "SELECT c.email, s.status, s.current_period_end FROM supasaasy.stripe_customers c
               JOIN supasaasy.stripe_subscriptions s ON s.customer_id = c.external_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        joined.len(),
        subs.len(),
        "every subscription joins its customer"
    );
    let no_period: i64 = db
        .query_one(
            "SELECT count(*) FROM supasaasy.stripe_subscriptions WHERE current_period_end IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(no_period, 0, "current_period_end read from the items");
    for view in [
        "stripe_products",
        "stripe_prices",
        "stripe_plans",
        "stripe_subscription_items",
    ] {
        let n: i64 = db
            .query_one(&format!("SELECT count(*) FROM supasaasy.{view}"), &[])
            .await
            .unwrap()
            .get(0);
        assert!(n > 0, "{view} has rows");
    }

    // Requests: one per committed page, plus the item lists of the two long subscriptions. A
    // listing split into `created` ranges ends each range with a partial (or empty) page, so a
    // resource takes at least one page per 100 objects, and at most one more per range (64).
    let tasks: Vec<(String, i64, i32)> = db
        .query(
            "SELECT resource_type, requests, pages FROM supasaasy.sync_tasks",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let requests: i64 = tasks.iter().map(|t| t.1).sum();
    let committed: i64 = tasks.iter().map(|t| i64::from(t.2)).sum();
    assert_eq!(requests, committed + 2, "{tasks:?}");
    for (resource, _, pages) in &tasks {
        let minimum = app.fake().ids(resource).len().div_ceil(100).max(1);
        assert!(
            (minimum..=minimum + 64).contains(&(*pages as usize)),
            "{resource}: {pages} pages, minimum {minimum}"
        );
    }

    // A second full run changes nothing and deletes nothing.
    let again = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "immediate": true}),
            200,
        )
        .await;
    assert_eq!(again["status"], "completed");
    for (resource, collection) in COLLECTIONS {
        assert_eq!(
            app.live_ids("stripe_test", collection).await,
            fake_ids(app.fake(), resource)
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn two_apps_in_one_database_are_kept_apart() {
    let setup = Setup {
        apps: vec![
            ("stripe_eu".into(), StripeData::generate(&counts(300, 120))),
            (
                "stripe_us".into(),
                StripeData::generate(&counts(150, 40)).with_api_key("sk_test_other"),
            ),
        ],
        ..Setup::default()
    };
    let app = spawn_app(setup).await;
    for s in &app.stripes {
        let done = app
            .sync(
                json!({"app_key": s.app_key, "mode": "full", "immediate": true}),
                200,
            )
            .await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    // Delete a customer from one account only; a full run of the other sweeps nothing of it.
    let gone = app.stripes[0].fake.ids("customer")[3].clone();
    app.stripes[0].fake.delete("customer", &gone);
    let done = app
        .sync(
            json!({"app_key": "stripe_us", "mode": "full", "immediate": true}),
            200,
        )
        .await;
    assert_eq!(done["status"], "completed");
    for s in &app.stripes {
        for (resource, collection) in COLLECTIONS {
            let mut want = fake_ids(&s.fake, resource);
            if s.app_key == "stripe_eu" && resource == "customer" {
                want.push(gone.clone());
                want.sort();
            }
            assert_eq!(
                app.live_ids(&s.app_key, collection).await,
                want,
                "{} {resource}",
                s.app_key
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn deletions_are_swept_only_after_a_clean_full_run() {
    let app = spawn_app(Setup::stripe(StripeData::generate(&counts(420, 0)))).await;
    let first = app.sync(json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"], "immediate": true}), 200).await;
    assert_eq!(first["status"], "completed");
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await.len(),
        420
    );

    let deleted: Vec<String> = app.fake().ids("customer").into_iter().step_by(60).collect();
    for id in &deleted {
        app.fake().delete("customer", id);
    }

    // A run that fails (the key is rejected) deletes nothing.
    app.fake().fail_next(1000, 401);
    let failed = app.sync(json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"], "immediate": true}), 200).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error_message"]
            .as_str()
            .unwrap()
            .contains("customer"),
        "{failed}"
    );
    app.fake().fail_next(0, 500);
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await.len(),
        420
    );

    // An incremental pass deletes nothing either.
    let inc = app.sync(json!({"app_key": "stripe_test", "mode": "incremental", "resource_types": ["customer"], "immediate": true}), 200).await;
    assert_eq!(inc["status"], "completed");
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await.len(),
        420
    );

    // A clean full run tombstones exactly the deleted ones; their rows stay.
    let clean = app.sync(json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"], "immediate": true}), 200).await;
    assert_eq!(clean["status"], "completed");
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await,
        fake_ids(app.fake(), "customer")
    );
    let db = app.db().await;
    let tombstones: Vec<String> = db
        .query(
            "SELECT external_id FROM supasaasy.entities WHERE deleted_at IS NOT NULL ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut want = deleted.clone();
    want.sort();
    assert_eq!(tombstones, want);
    let visible: i64 = db
        .query_one("SELECT count(*) FROM supasaasy.stripe_customers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        visible,
        420 - deleted.len() as i64,
        "the view hides tombstones"
    );
    app.stop().await;
}

#[tokio::test]
async fn sync_from_limits_the_listing_and_the_sweep() {
    let data = StripeData::generate(&counts(300, 0));
    let (cutoff, from) = nth_created(&data, 150);
    let app = spawn_app(Setup {
        app_extra: format!("sync_from = \"{from}\"\n"),
        ..Setup::stripe(data)
    })
    .await;
    let full = json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"], "immediate": true});
    let done = app.sync(full.clone(), 200).await;
    assert_eq!(done["status"], "completed");
    let recent: Vec<String> = {
        let mut ids: Vec<String> = app
            .fake()
            .ids("customer")
            .into_iter()
            .filter(|id| {
                app.fake().get("customer", id).unwrap()["created"]
                    .as_i64()
                    .unwrap()
                    >= cutoff
            })
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(app.live_ids("stripe_test", "stripe_customer").await, recent);

    // Rows outside the window (an older config, a webhook) are not the run's to sweep; an unseen
    // row inside the window is.
    let db = app.db().await;
    for (id, created) in [
        ("cus_old_outside", cutoff - 86_400),
        ("cus_gone_inside", cutoff + 60),
    ] {
        db.execute(
            "INSERT INTO supasaasy.entities (app_key, collection_key, external_id, raw_payload,
                 source_updated_at, source_created_at)
             VALUES ('stripe_test', 'stripe_customer', $1, $2, now() - interval '1 hour', to_timestamp($3))",
            &[&id, &json!({"id": id, "object": "customer", "created": created}), &(created as f64)],
        )
        .await
        .unwrap();
    }
    let done = app.sync(full, 200).await;
    assert_eq!(done["status"], "completed");
    let mut want = recent.clone();
    want.push("cus_old_outside".into());
    want.sort();
    assert_eq!(app.live_ids("stripe_test", "stripe_customer").await, want);
    app.stop().await;
}
