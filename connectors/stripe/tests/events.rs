//! The connector's incremental side against the fake Stripe of `supasaasy-testkit`: single-object
//! fetches (deletions, subscriptions with truncated items, errors) and `/v1/events` walks (type
//! filters per resource, the time window, pagination, the truncated-items rule), plus the
//! signature the fake makes checked by the connector.

use std::time::Duration;

use serde_json::{json, Value};
use supasaasy_connector::{
    AppSettings, Change, Connector, ConnectorError, Event, EventWindow, Secret,
};
use supasaasy_stripe::StripeConnector;
use supasaasy_testkit::fake_stripe::{fixture, stripe_signature, Counts, FakeStripe, StripeData};

const APP: &str = "stripe_fake";
/// The fake's pinned clock: every recorded event has this `created` unless the clock moves.
const T0: i64 = 1_760_000_000;

fn connector_with_key(stripe: &FakeStripe, api_key: &str) -> StripeConnector {
    StripeConnector::new(AppSettings {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        ..AppSettings::new(APP, Secret::new(api_key), stripe.base_url())
    })
    .expect("connector")
}

fn connector(stripe: &FakeStripe) -> StripeConnector {
    connector_with_key(stripe, stripe.api_key())
}

fn counts() -> Counts {
    Counts {
        customers: 20,
        products: 2,
        prices_per_product: 2,
        subscriptions: 10,
        items_per_subscription: 2,
        canceled_every: 4,
        ..Counts::default()
    }
}

async fn start(data: StripeData) -> FakeStripe {
    let stripe = FakeStripe::start(data).await;
    stripe.set_clock(Some(T0));
    stripe
}

/// A subscription with `n` items of its own, added to the fake's initial data.
fn subscription_with_items(data: &mut StripeData, id: &str, created: i64, n: usize) {
    let mut subscription = fixture("subscription");
    subscription["id"] = json!(id);
    subscription["created"] = json!(created);
    data.upsert("subscription", subscription);
    data.set_subscription_items(id, items(id, created, n));
}

fn items(subscription_id: &str, created: i64, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut item = fixture("subscription_item");
            item["id"] = json!(format!("si_{subscription_id}_{i:03}"));
            item["created"] = json!(created + i as i64);
            item
        })
        .collect()
}

/// Every event of `resource` in `window`, walked page by page as the daemon does.
async fn walk_events(
    connector: &StripeConnector,
    resource: &str,
    window: &EventWindow,
) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = connector
            .list_events(resource, cursor.as_deref(), window, None)
            .await
            .unwrap_or_else(|err| panic!("{resource} events page {}: {err}", pages + 1));
        pages += 1;
        assert_eq!(page.requests, 1);
        if let Some(next) = &page.next_cursor {
            assert_eq!(Some(next), page.events.last().map(|e| &e.id));
        }
        events.extend(page.events);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return (events, pages),
        }
        assert!(pages < 100, "{resource} events do not end");
    }
}

fn window() -> EventWindow {
    EventWindow {
        created_gt: T0 - 1,
        created_lte: T0 + 60,
    }
}

fn types(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

fn only_change(event: &Event) -> &Change {
    assert!(!event.ignored, "{}", event.event_type);
    assert_eq!(event.changes.len(), 1, "{}", event.event_type);
    &event.changes[0]
}

#[tokio::test]
async fn fetch_object_returns_each_resource_as_served() {
    let stripe = start(StripeData::generate(&counts())).await;
    let connector = connector(&stripe);
    for (resource, collection_key) in [
        ("customer", "stripe_customer"),
        ("product", "stripe_product"),
        ("price", "stripe_price"),
        ("plan", "stripe_plan"),
        ("subscription", "stripe_subscription"),
    ] {
        let id = stripe.ids(resource)[1].clone();
        let change = connector
            .fetch_object(resource, &id, None)
            .await
            .unwrap_or_else(|err| panic!("{resource}: {err}"));
        assert_eq!(change.resource, resource);
        assert!(!change.deleted, "{resource}");
        assert_eq!(change.record.collection_key, collection_key);
        assert_eq!(change.record.external_id, id);
        assert_eq!(
            Some(change.record.payload.value().into_owned()),
            stripe.get(resource, &id)
        );
        assert_eq!(
            change.record.created,
            change.record.payload.value()["created"].as_i64()
        );
        assert_eq!(change.children.is_some(), resource == "subscription");
    }
}

#[tokio::test]
async fn fetch_object_reports_gone_objects_as_deletions() {
    let stripe = start(StripeData::generate(&counts())).await;
    let connector = connector(&stripe);

    let customer = stripe.ids("customer")[0].clone();
    assert!(stripe.delete("customer", &customer));
    let change = connector
        .fetch_object("customer", &customer, None)
        .await
        .expect("deleted customer");
    assert!(change.deleted);
    assert_eq!(change.record.external_id, customer);
    assert_eq!(change.record.payload.value()["deleted"], json!(true));

    let product = stripe.ids("product")[0].clone();
    assert!(stripe.delete("product", &product));
    let change = connector
        .fetch_object("product", &product, None)
        .await
        .expect("404");
    assert!(change.deleted);
    assert_eq!(change.resource, "product");
    assert_eq!(change.record.collection_key, "stripe_product");
    assert_eq!(
        change.record.payload,
        json!({"id": product, "object": "product", "deleted": true})
    );

    let never = connector
        .fetch_object("price", "price_neverexisted", None)
        .await
        .expect("404");
    assert!(never.deleted);
    assert_eq!(never.record.external_id, "price_neverexisted");
}

#[tokio::test]
async fn fetch_object_brings_every_item_of_a_subscription() {
    let mut data = StripeData::empty();
    subscription_with_items(&mut data, "sub_few", 1_700_000_300, 3);
    subscription_with_items(&mut data, "sub_many", 1_700_000_100, 150);
    let stripe = start(data).await;
    let connector = connector(&stripe);

    let few = connector
        .fetch_object("subscription", "sub_few", None)
        .await
        .expect("few");
    let children = few.children.expect("complete items");
    assert_eq!(children.collection_key, "stripe_subscription_item");
    assert_eq!(children.parent_field, "subscription");
    assert_eq!(children.records.len(), 3);
    assert_eq!(stripe.requests_to("/v1/subscription_items"), 0);

    let many = connector
        .fetch_object("subscription", "sub_many", None)
        .await
        .expect("many");
    // Stripe embeds ten and says there are more; the rest come from /v1/subscription_items.
    assert_eq!(
        many.record.payload.value()["items"]["has_more"],
        json!(true)
    );
    let children = many.children.expect("complete items");
    let ids: Vec<String> = children
        .records
        .iter()
        .map(|r| r.external_id.clone())
        .collect();
    let mut expected: Vec<String> = items("sub_many", 1_700_000_100, 150)
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected);
    assert!(children
        .records
        .iter()
        .all(|r| r.payload.value()["subscription"] == json!("sub_many")));
    assert_eq!(stripe.requests_to("/v1/subscription_items"), 2);
}

#[tokio::test]
async fn fetch_object_errors_are_classified() {
    let stripe = start(StripeData::generate(&counts())).await;
    let connector = connector(&stripe);
    let id = stripe.ids("customer")[0].clone();

    stripe.fail_next(1, 503);
    let err = connector
        .fetch_object("customer", &id, None)
        .await
        .expect_err("503");
    assert!(matches!(err, ConnectorError::Retryable { .. }), "{err:?}");

    stripe.fail_next(1, 429);
    let err = connector
        .fetch_object("customer", &id, None)
        .await
        .expect_err("429");
    assert!(matches!(err, ConnectorError::RateLimited { .. }), "{err:?}");

    let wrong_key = "sk_test_wrong_key_00000000";
    let err = connector_with_key(&stripe, wrong_key)
        .fetch_object("customer", &id, None)
        .await
        .expect_err("401");
    match err {
        ConnectorError::Rejected { message } => assert!(!message.contains(wrong_key), "{message}"),
        other => panic!("expected Rejected, got {other:?}"),
    }

    let change = connector
        .fetch_object("customer", &id, None)
        .await
        .expect("recovers");
    assert!(!change.deleted);
}

#[tokio::test]
async fn events_are_listed_per_resource_and_mapped() {
    let mut data = StripeData::generate(&counts());
    subscription_with_items(&mut data, "sub_events", 1_700_000_000, 2);
    let stripe = start(data).await;
    let connector = connector(&stripe);

    let customer = stripe.ids("customer")[0].clone();
    let mut new_customer = fixture("customer");
    new_customer["id"] = json!("cus_newcustomer1");
    // The fixture carries a discount, which would be a change of its own.
    new_customer["discount"] = Value::Null;
    stripe.upsert("customer", new_customer);
    assert!(stripe.update("customer", &customer, |c| c["email"] =
        json!("new@example.com")));
    assert!(stripe.delete("customer", &customer));
    let product = stripe.ids("product")[0].clone();
    assert!(stripe.update("product", &product, |p| p["active"] = json!(false)));
    assert!(stripe.update("subscription", "sub_events", |s| {
        s["status"] = json!("canceled");
    }));

    let (events, pages) = walk_events(&connector, "customer", &window()).await;
    assert_eq!(pages, 1);
    // Newest first.
    assert_eq!(
        types(&events),
        ["customer.deleted", "customer.updated", "customer.created"]
    );
    assert!(only_change(&events[0]).deleted);
    assert_eq!(only_change(&events[0]).record.external_id, customer);
    assert_eq!(
        only_change(&events[1]).record.payload.value()["email"],
        json!("new@example.com")
    );
    assert_eq!(
        only_change(&events[2]).record.external_id,
        "cus_newcustomer1"
    );
    assert!(events.iter().all(|e| e.created == T0));

    let (events, _) = walk_events(&connector, "product", &window()).await;
    assert_eq!(types(&events), ["product.updated"]);
    let change = only_change(&events[0]);
    assert!(change.record.archived && !change.deleted);

    let (events, _) = walk_events(&connector, "subscription", &window()).await;
    assert_eq!(types(&events), ["customer.subscription.deleted"]);
    let change = only_change(&events[0]);
    assert!(!change.deleted, "an ended subscription is still there");
    assert_eq!(change.record.payload.value()["status"], json!("canceled"));
    assert_eq!(change.children.as_ref().map(|c| c.records.len()), Some(2));

    for resource in ["price", "plan"] {
        let (events, _) = walk_events(&connector, resource, &window()).await;
        assert!(events.is_empty(), "{resource}: {:?}", types(&events));
    }
}

#[tokio::test]
async fn events_walk_pages_within_the_window() {
    let stripe = start(StripeData::generate(&counts())).await;
    let connector = connector(&stripe);
    let ids = stripe.ids("customer");

    // Before the window: not listed.
    stripe.set_clock(Some(T0 - 10));
    assert!(stripe.update("customer", &ids[0], |c| c["name"] = json!("early")));
    // 150 updates inside it, a second apart.
    for i in 0..150 {
        stripe.set_clock(Some(T0 + i));
        let id = &ids[usize::try_from(i).expect("index") % ids.len()];
        assert!(stripe.update("customer", id, |c| c["name"] = json!(format!("n{i}"))));
    }
    // After it: not listed either.
    stripe.set_clock(Some(T0 + 500));
    assert!(stripe.update("customer", &ids[1], |c| c["name"] = json!("late")));

    let window = EventWindow {
        created_gt: T0 - 1,
        created_lte: T0 + 149,
    };
    let (events, pages) = walk_events(&connector, "customer", &window).await;
    assert_eq!(pages, 2);
    assert_eq!(events.len(), 150);
    let created: Vec<i64> = events.iter().map(|e| e.created).collect();
    let expected: Vec<i64> = (0..150).rev().map(|i| T0 + i).collect();
    assert_eq!(created, expected);
    let mut unique: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 150);
    assert_eq!(
        only_change(&events[0]).record.payload.value()["name"],
        json!("n149")
    );

    // The lower bound is exclusive.
    let narrow = EventWindow {
        created_gt: T0 + 147,
        created_lte: T0 + 149,
    };
    let (events, _) = walk_events(&connector, "customer", &narrow).await;
    assert_eq!(
        events.iter().map(|e| e.created).collect::<Vec<_>>(),
        [T0 + 149, T0 + 148]
    );
}

#[tokio::test]
async fn truncated_items_in_an_event_leave_children_to_a_fetch() {
    let mut data = StripeData::empty();
    subscription_with_items(&mut data, "sub_many", 1_700_000_100, 30);
    let stripe = start(data).await;
    let connector = connector(&stripe);

    assert!(stripe.update("subscription", "sub_many", |s| {
        s["metadata"] = json!({"plan": "gold"});
    }));
    let (events, _) = walk_events(&connector, "subscription", &window()).await;
    assert_eq!(types(&events), ["customer.subscription.updated"]);
    let change = only_change(&events[0]);
    assert_eq!(
        change.children, None,
        "the event embeds only ten of 30 items"
    );

    let fetched = connector
        .fetch_object(change.resource, &change.record.external_id, None)
        .await
        .expect("fetch");
    assert_eq!(fetched.children.map(|c| c.records.len()), Some(30));
}

#[tokio::test]
async fn events_errors_are_classified() {
    let stripe = start(StripeData::generate(&counts())).await;
    let connector = connector(&stripe);
    stripe.fail_next(1, 500);
    let err = connector
        .list_events("customer", None, &window(), None)
        .await
        .expect_err("500");
    assert!(matches!(err, ConnectorError::Retryable { .. }), "{err:?}");

    // A cursor Stripe never handed out is a client error.
    let err = connector
        .list_events("customer", Some("evt_unknown"), &window(), None)
        .await
        .expect_err("400");
    assert!(matches!(err, ConnectorError::Fatal { .. }), "{err:?}");
}

#[tokio::test]
async fn deliveries_signed_by_the_fake_verify() {
    let stripe = start(StripeData::generate(&counts())).await;
    let id = stripe.ids("customer")[0].clone();
    assert!(stripe.update("customer", &id, |c| c["name"] = json!("signed")));
    let event = stripe.last_event().expect("event");
    let body = serde_json::to_vec(&event).expect("body");

    let connector = connector(&stripe);
    let secret = Secret::new("whsec_fake_endpoint");
    let header = stripe_signature(secret.expose(), T0, &body);
    assert_eq!(header, supasaasy_stripe::sign(secret.expose(), T0, &body));
    connector
        .verify_webhook(&secret, Some(&header), &body, T0 + 5)
        .expect("verifies");
    let parsed = connector.parse_webhook(&body).expect("parses");
    assert_eq!(parsed.event_type, "customer.updated");
    assert_eq!(
        only_change(&parsed).record.payload.value()["name"],
        json!("signed")
    );
}
