//! Stripe ids as accounts have them: custom ids with `-` (allowed since 2018) and, from before
//! 2018, with spaces, dots or `%`, reach Stripe escaped as one path segment, for a customer's
//! lists and for the fetch that settles a same-second conflict.

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::{Counts, StripeData};

use crate::helpers::{spawn_app, Setup};

const APP: &str = "stripe_test";

fn event(id: &str, kind: &str, object: &Value, created: i64) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": created,
           "data": {"object": object}})
}

#[tokio::test]
async fn custom_and_legacy_ids_are_listed_and_fetched_escaped() {
    let app = spawn_app(Setup::stripe(StripeData::generate(&Counts {
        customers: 3,
        others: 2,
        ..Counts::default()
    })))
    .await;
    let fake = app.fake();
    // A customer with an id of its own, and a tax id under it.
    let legacy = "cust-42 legacy.v1/100%";
    let mut customer = fake.get("customer", &fake.ids("customer")[0]).unwrap();
    customer["id"] = json!(legacy);
    fake.upsert("customer", customer);
    let mut tax_id = fake.get("tax_id", &fake.ids("tax_id")[0]).unwrap();
    tax_id["id"] = json!("txi_of_the_legacy_customer");
    tax_id["customer"] = json!(legacy);
    fake.upsert("tax_id", tax_id);

    let job = app
        .sync(
            json!({"app_key": APP, "mode": "full", "resource_types": ["customer", "tax_id", "coupon"], "immediate": true}),
            200,
        )
        .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert!(app.row(APP, "stripe_customer", legacy).await.is_some());
    let (row, _) = app
        .row(APP, "stripe_tax_id", "txi_of_the_legacy_customer")
        .await
        .expect("listed under the customer with the odd id");
    assert_eq!(row["customer"], legacy);

    // A coupon from before 2018, changed twice in one second: the daemon fetches it to know
    // which state is the last, by its escaped id.
    let coupon_id = "Gold 50% off?/..";
    let mut coupon = fake.get("coupon", &fake.ids("coupon")[0]).unwrap();
    coupon["id"] = json!(coupon_id);
    coupon["name"] = json!("As Stripe has it");
    fake.upsert("coupon", coupon.clone());
    let now = chrono::Utc::now().timestamp();
    let mut first = coupon.clone();
    first["name"] = json!("First");
    let mut second = coupon.clone();
    second["name"] = json!("Second");
    for (n, state) in [first, second].iter().enumerate() {
        let e = event(
            &format!("evt_legacy_coupon_{n}"),
            "coupon.updated",
            state,
            now,
        );
        let (status, answer) = app.deliver(APP, &e).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (row, _) = app.row(APP, "stripe_coupon", coupon_id).await.unwrap();
    assert_eq!(row["name"], "As Stripe has it", "the fetched state wins");

    // An id no request path can hold is acknowledged, left out and said why.
    let mut dots = coupon.clone();
    dots["id"] = json!("..");
    let (status, answer) = app
        .deliver(APP, &event("evt_dots", "coupon.updated", &dots, now))
        .await;
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );
    assert!(app.row(APP, "stripe_coupon", "..").await.is_none());
    app.stop().await;
}
