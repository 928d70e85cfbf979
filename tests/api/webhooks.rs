//! Stripe webhooks: signatures, every mapped event type, order, duplicates, unknown types, logging.

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::{stripe_signature, Counts, StripeData};

use crate::helpers::{spawn_app, webhook_secret, Setup, TestApp};

fn data() -> StripeData {
    StripeData::generate(&Counts {
        customers: 30,
        products: 4,
        prices_per_product: 2,
        subscriptions: 12,
        items_per_subscription: 3,
        canceled_every: 0,
        ..Counts::default()
    })
}

async fn app() -> TestApp {
    spawn_app(Setup {
        workers: false,
        ..Setup::stripe(data())
    })
    .await
}

/// Mutates the fake and returns the event the mutation produced.
fn last_event(app: &TestApp) -> Value {
    app.fake()
        .last_event()
        .expect("the mutation recorded an event")
}

#[tokio::test]
async fn signatures_are_checked_before_anything_is_written() {
    let app = app().await;
    let id = app.fake().ids("customer")[0].clone();
    app.fake()
        .update("customer", &id, |c| c["name"] = json!("Signed Name"));
    let event = last_event(&app);
    let body = serde_json::to_vec(&event).unwrap();
    let secret = webhook_secret("stripe_test");
    let now = chrono::Utc::now().timestamp();
    let good = stripe_signature(&secret, now, &body);
    let v1_good = good.split("v1=").nth(1).unwrap().to_string();
    let wrong = stripe_signature("whsec_wrong", now, &body);
    let v1_wrong = wrong.split("v1=").nth(1).unwrap().to_string();
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let refused: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("wrong secret", body.clone(), Some(wrong.clone())),
        (
            "stale",
            body.clone(),
            Some(stripe_signature(&secret, now - 301, &body)),
        ),
        ("missing header", body.clone(), None),
        ("tampered body", tampered, Some(good.clone())),
        ("garbage header", body.clone(), Some("t=abc,v1=zz".into())),
        ("no v1", body.clone(), Some(format!("t={now}"))),
    ];
    for (what, body, sig) in refused {
        let (status, answer) = app.post_webhook("stripe_test", &body, sig.as_deref()).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert!(answer["error"].is_string());
    }
    assert_eq!(
        app.count("entities").await,
        0,
        "a refused webhook changes no row"
    );
    assert_eq!(app.count("provider_events").await, 0);

    // The golden vector of the fixtures: valid but years old, so refused with today's clock.
    let golden = br#"{"id":"evt_test_1","object":"event","type":"customer.created","data":{"object":{"id":"cus_123","object":"customer"}}}"#;
    let (status, _) = app
        .post_webhook(
            "stripe_test",
            golden,
            Some(
                "t=1700000000,v1=969ed486311f01fe741ae24da3ba6be8b34d97722fca107d40ca42b25d7a1ed6",
            ),
        )
        .await;
    assert_eq!(status, 401);

    // A rotated secret sends two v1 values; one matching is enough.
    let rotated = format!("t={now},v1={v1_wrong},v1={v1_good}");
    let (status, answer) = app.post_webhook("stripe_test", &body, Some(&rotated)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["received"], true);
    assert_eq!(answer["action"], "applied");
    let (payload, deleted) = app
        .row("stripe_test", "stripe_customer", &id)
        .await
        .unwrap();
    assert_eq!(payload["name"], "Signed Name");
    assert!(!deleted);
    app.stop().await;
}

#[tokio::test]
async fn bad_requests_get_their_status_and_change_nothing() {
    let app = app().await;
    let secret = webhook_secret("stripe_test");
    let now = chrono::Utc::now().timestamp();
    let body = br#"{"id":"evt_1","object":"event","type":"customer.updated"}"#;
    let (status, _) = app
        .post_webhook("nope", body, Some(&stripe_signature(&secret, now, body)))
        .await;
    assert_eq!(status, 404, "unknown app");
    let (status, answer) = app
        .post_webhook(
            "stripe_test",
            body,
            Some(&stripe_signature(&secret, now, body)),
        )
        .await;
    assert_eq!(status, 400, "signed but no data.object: {answer}");
    let not_json = b"{{{{";
    let (status, _) = app
        .post_webhook(
            "stripe_test",
            not_json,
            Some(&stripe_signature(&secret, now, not_json)),
        )
        .await;
    assert_eq!(status, 400, "malformed");
    let big = vec![b'x'; (1 << 20) + 10];
    let (status, _) = app
        .post_webhook(
            "stripe_test",
            &big,
            Some(&stripe_signature(&secret, now, &big)),
        )
        .await;
    assert_eq!(status, 413, "too large");
    let get = app
        .http
        .get(format!("{}/webhook/stripe_test", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(app.count("entities").await, 0);
    assert_eq!(app.count("provider_events").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn every_mapped_event_type_reaches_the_mirror() {
    let app = app().await;
    let fake = app.fake();
    let cus = fake.ids("customer")[0].clone();
    let prod = fake.ids("product")[0].clone();
    let price = fake.ids("price")[0].clone();
    let plan = fake.ids("plan")[0].clone();
    let sub = fake.ids("subscription")[0].clone();

    // created / updated / deleted of each plain resource.
    for (resource, collection, id) in [
        ("customer", "stripe_customer", &cus),
        ("product", "stripe_product", &prod),
        ("price", "stripe_price", &price),
        ("plan", "stripe_plan", &plan),
    ] {
        let mut fresh = fake.get(resource, id).unwrap();
        let new_id = format!("{}_new", id);
        fresh["id"] = json!(new_id);
        fake.upsert(resource, fresh);
        let created = last_event(&app);
        assert_eq!(created["type"], format!("{resource}.created"));
        assert_eq!(
            app.deliver("stripe_test", &created).await.1["action"],
            "applied"
        );
        assert_eq!(
            app.row("stripe_test", collection, &new_id).await.unwrap().0,
            fake.get(resource, &new_id).unwrap()
        );

        fake.update(resource, id, |o| o["metadata"] = json!({"touched": "yes"}));
        let updated = last_event(&app);
        assert_eq!(updated["type"], format!("{resource}.updated"));
        assert_eq!(app.deliver("stripe_test", &updated).await.0, 200);
        assert_eq!(
            app.row("stripe_test", collection, id).await.unwrap().0["metadata"]["touched"],
            "yes"
        );

        fake.delete(resource, &new_id);
        let deleted = last_event(&app);
        assert_eq!(deleted["type"], format!("{resource}.deleted"));
        assert_eq!(
            app.deliver("stripe_test", &deleted).await.1["action"],
            "applied"
        );
        assert!(
            app.row("stripe_test", collection, &new_id).await.unwrap().1,
            "{resource} tombstoned"
        );
    }

    // Subscriptions: updated with items; items that left are tombstoned; deleted means ended.
    let items = fake.ids("subscription_item");
    let sub_items: Vec<Value> = items
        .iter()
        .filter_map(|i| fake.get("subscription_item", i))
        .filter(|i| i["subscription"] == json!(sub))
        .collect();
    assert_eq!(sub_items.len(), 3);
    fake.update("subscription", &sub, |s| {
        s["metadata"] = json!({"plan": "gold"})
    });
    let (status, answer) = app.deliver("stripe_test", &last_event(&app)).await;
    assert_eq!(status, 200, "{answer}");
    let live_items = app
        .live_ids("stripe_test", "stripe_subscription_item")
        .await;
    assert_eq!(live_items.len(), 3);
    fake.set_subscription_items(&sub, sub_items[..1].to_vec());
    let event = last_event(&app);
    assert_eq!(event["type"], "customer.subscription.updated");
    assert_eq!(app.deliver("stripe_test", &event).await.0, 200);
    assert_eq!(
        app.live_ids("stripe_test", "stripe_subscription_item")
            .await,
        vec![sub_items[0]["id"].as_str().unwrap().to_string()],
        "items that left the subscription are tombstoned"
    );
    // Found through the index on the items' parent field, not by reading every item of the app.
    let indexed: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'supasaasy'
                AND indexname = 'entities_stripe_subscription_item_parent'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexed, 1);
    fake.update("subscription", &sub, |s| {
        s["status"] = json!("canceled");
        s["canceled_at"] = json!(chrono::Utc::now().timestamp());
    });
    let ended = last_event(&app);
    assert_eq!(ended["type"], "customer.subscription.deleted");
    assert_eq!(
        app.deliver("stripe_test", &ended).await.1["action"],
        "applied"
    );
    let (payload, tombstone) = app
        .row("stripe_test", "stripe_subscription", &sub)
        .await
        .unwrap();
    assert!(!tombstone, "an ended subscription stays in the mirror");
    assert_eq!(payload["status"], "canceled");
    let status: String = app
        .db()
        .await
        .query_one(
            "SELECT status FROM supasaasy.stripe_subscriptions WHERE external_id = $1",
            &[&sub],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "canceled");
    app.stop().await;
}

#[tokio::test]
async fn order_duplicates_and_unknown_types() {
    let app = app().await;
    let fake = app.fake();
    let id = fake.ids("customer")[5].clone();
    let t0 = chrono::Utc::now().timestamp() - 600;

    // Out of order: the newer event first, the older one changes nothing.
    fake.set_clock(Some(t0));
    fake.update("customer", &id, |c| c["name"] = json!("Older"));
    let older = last_event(&app);
    fake.set_clock(Some(t0 + 5));
    fake.update("customer", &id, |c| c["name"] = json!("Newer"));
    let newer = last_event(&app);
    assert_eq!(
        app.deliver("stripe_test", &newer).await.1["action"],
        "applied"
    );
    assert_eq!(
        app.deliver("stripe_test", &older).await.1["action"],
        "stale"
    );
    assert_eq!(
        app.row("stripe_test", "stripe_customer", &id)
            .await
            .unwrap()
            .0["name"],
        "Newer"
    );

    // A duplicate delivery changes nothing.
    let (status, answer) = app.deliver("stripe_test", &newer).await;
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("duplicate"))
    );

    // Two events in the same second, the later state delivered first: the order cannot be known
    // from the events, so the object is fetched; the later state wins either way.
    for (k, (first_name, second_name)) in [("Same A", "Same B"), ("Same C", "Same D")]
        .into_iter()
        .enumerate()
    {
        let at = t0 + 60 + 120 * k as i64;
        fake.set_clock(Some(at));
        fake.update("customer", &id, |c| c["name"] = json!(first_name));
        let first = last_event(&app);
        fake.update("customer", &id, |c| c["name"] = json!(second_name));
        let second = last_event(&app);
        assert_eq!(first["created"], second["created"]);
        if first_name == "Same A" {
            app.deliver("stripe_test", &second).await;
            app.deliver("stripe_test", &first).await;
        } else {
            app.deliver("stripe_test", &first).await;
            app.deliver("stripe_test", &second).await;
        }
        assert_eq!(
            app.row("stripe_test", "stripe_customer", &id)
                .await
                .unwrap()
                .0["name"],
            second_name
        );
        fake.set_clock(Some(at + 60));
        fake.update("customer", &id, |c| c["name"] = json!("Reset"));
        app.deliver("stripe_test", &last_event(&app)).await;
    }

    // A deletion, then a stale update: the row stays deleted.
    let gone = fake.ids("customer")[6].clone();
    fake.set_clock(Some(t0 + 200));
    fake.update("customer", &gone, |c| c["name"] = json!("Before deletion"));
    let stale_update = last_event(&app);
    fake.set_clock(Some(t0 + 210));
    fake.delete("customer", &gone);
    let deletion = last_event(&app);
    assert_eq!(
        app.deliver("stripe_test", &deletion).await.1["action"],
        "applied"
    );
    assert_eq!(
        app.deliver("stripe_test", &stale_update).await.1["action"],
        "stale"
    );
    assert!(
        app.row("stripe_test", "stripe_customer", &gone)
            .await
            .unwrap()
            .1,
        "stays deleted"
    );
    let visible: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.stripe_customers WHERE external_id = $1",
            &[&gone],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(visible, 0);

    // Types the daemon does not map are acknowledged, never an error.
    let unknown = json!({"id": "evt_unknown_1", "object": "event", "type": "invoice.upcoming",
        "created": t0, "data": {"object": {"object": "invoice", "amount_due": 100}}});
    let (status, answer) = app.deliver("stripe_test", &unknown).await;
    assert_eq!((status, answer["action"].as_str()), (200, Some("ignored")));
    app.stop().await;
}

#[tokio::test]
async fn webhook_requests_are_logged_with_secrets_redacted() {
    let app = spawn_app(Setup {
        workers: false,
        extra_toml: "[webhook_logging]\nenabled = true\nretention_days = 3\n".into(),
        ..Setup::stripe(data())
    })
    .await;
    let id = app.fake().ids("customer")[0].clone();
    app.fake()
        .update("customer", &id, |c| c["name"] = json!("Logged"));
    let (status, _) = app.deliver("stripe_test", &last_event(&app)).await;
    assert_eq!(status, 200);
    // Headers a proxy adds to carry credentials, whatever their names, are never logged.
    let resp = app
        .http
        .post(format!("{}/webhook/stripe_test", app.base))
        .header("Stripe-Signature", "t=1,v1=00")
        .header("Proxy-Authorization", "Basic c2VjcmV0")
        .header("X-Forwarded-Authorization", "Bearer proxied-secret")
        .header("X-Auth", "another-secret")
        .header("Content-Type", "application/json")
        .body(b"{}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let rows = app
        .db()
        .await
        .query(
            "SELECT status, headers, error, body FROM supasaasy.webhook_logs ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<_, i32>(0), 200);
    assert_eq!(rows[1].get::<_, i32>(0), 401);
    for row in &rows {
        let headers: Value = row.get(1);
        assert_eq!(headers["stripe-signature"], "[redacted]");
    }
    let headers: Value = rows[1].get(1);
    for name in ["proxy-authorization", "x-forwarded-authorization", "x-auth"] {
        assert_eq!(headers[name], "[redacted]", "{name}: {headers}");
    }
    assert_eq!(headers["content-type"], "application/json");
    assert!(!headers.to_string().contains("secret"), "{headers}");
    assert!(rows[1]
        .get::<_, Option<String>>(2)
        .unwrap()
        .contains("signature"));
    assert!(rows[0].get::<_, String>(3).contains("Logged"));

    // Retention: rows older than retention_days go.
    let db = app.db().await;
    db.execute("UPDATE supasaasy.webhook_logs SET created_at = now() - interval '4 days' WHERE status = 401", &[])
        .await
        .unwrap();
    let (logs, _) = supasaasy::store::events::prune(&**db, 3, 31).await.unwrap();
    assert_eq!(logs, 1);
    assert_eq!(app.count("webhook_logs").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_time_at_the_end_of_time_or_an_id_beyond_storing_is_refused_and_stops_nothing() {
    let app = app().await;
    let fake = app.fake();
    let id = fake.ids("customer")[0].clone();
    fake.update("customer", &id, |c| c["name"] = json!("First"));
    let first = last_event(&app);
    let (status, body) = app.deliver("stripe_test", &first).await;
    assert_eq!(
        (status, body["action"].as_str()),
        (200, Some("applied")),
        "{body}"
    );
    // Signed, about the same customer, and created near the end of what a timestamp can hold:
    // a second after it is not a time at all.
    let mut absurd = first.clone();
    absurd["id"] = json!("evt_end_of_time");
    absurd["created"] = json!(8_210_266_876_799_i64);
    let (status, body) = app.deliver("stripe_test", &absurd).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("8210266876799"),
        "{body}"
    );
    // Event ids the table of events seen cannot hold (U+0000) or index (kilobytes of random
    // characters): refused at once, not answered 503 for the provider to redeliver for days.
    let long: String = (0..600)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    for bad in ["evt_\u{0}x".to_owned(), format!("evt_{long}")] {
        let mut event = first.clone();
        event["id"] = json!(bad);
        let (status, body) = app.deliver("stripe_test", &event).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["error"].as_str().unwrap().contains("its id"), "{body}");
    }
    // The lanes go on: the next delivery is applied.
    fake.update("customer", &id, |c| c["name"] = json!("Second"));
    let second = last_event(&app);
    let (status, body) = app.deliver("stripe_test", &second).await;
    assert_eq!(status, 200, "{body}");
    let (row, _) = app
        .row("stripe_test", "stripe_customer", &id)
        .await
        .unwrap();
    assert_eq!(row["name"], "Second");
    app.stop().await;
}
