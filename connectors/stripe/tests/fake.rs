//! The connector against the fake Stripe of `supasaasy-testkit`: whole walks of every resource of
//! the table (per customer where it is listed so), pagination, truncated children (subscription
//! items, invoice and credit note lines), fetches of every resource, the `created` filter (and a
//! list refusing it) and errors as the daemon sees them.

use std::time::Duration;

use serde_json::{json, Value};
use supasaasy_connector::{AppSettings, Connector, ConnectorError, ListOptions, Record, Secret};
use supasaasy_stripe::resources::{Parent, TABLE};
use supasaasy_stripe::StripeConnector;
use supasaasy_testkit::fake_stripe::{fixture, Counts, FakeStripe, StripeData};

const APP: &str = "stripe_fake";

fn connector_with_key(stripe: &FakeStripe, api_key: &str) -> StripeConnector {
    StripeConnector::new(AppSettings {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        ..AppSettings::new(APP, Secret::new(api_key), format!("{}/", stripe.base_url()))
    })
    .expect("connector")
}

fn connector(stripe: &FakeStripe) -> StripeConnector {
    connector_with_key(stripe, stripe.api_key())
}

/// Every record of a resource, walked page by page as the daemon does.
struct Walk {
    records: Vec<Record>,
    pages: usize,
    requests: u32,
}

impl Walk {
    fn ids(&self, collection_key: &str) -> Vec<String> {
        self.records
            .iter()
            .filter(|r| r.collection_key == collection_key)
            .map(|r| r.external_id.clone())
            .collect()
    }
}

async fn walk(connector: &StripeConnector, resource: &str, options: &ListOptions) -> Walk {
    let mut walk = Walk {
        records: Vec::new(),
        pages: 0,
        requests: 0,
    };
    let mut cursor: Option<String> = None;
    loop {
        let page = connector
            .list_page(resource, cursor.as_deref(), options)
            .await
            .unwrap_or_else(|err| panic!("{resource} page {}: {err}", walk.pages + 1));
        walk.pages += 1;
        walk.requests += page.requests;
        walk.records.extend(page.records);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return walk,
        }
        assert!(walk.pages < 1000, "{resource} does not end");
    }
}

fn counts() -> Counts {
    Counts {
        customers: 250,
        products: 4,
        prices_per_product: 3,
        subscriptions: 120,
        items_per_subscription: 2,
        canceled_every: 4,
        ..Counts::default()
    }
}

#[tokio::test]
async fn walks_every_resource_across_pages() {
    let stripe = FakeStripe::start(StripeData::generate(&counts())).await;
    let connector = connector(&stripe);

    for (resource, collection_key, pages) in [
        ("customer", "stripe_customer", 3),
        ("product", "stripe_product", 1),
        ("price", "stripe_price", 1),
        ("plan", "stripe_plan", 1),
        ("subscription", "stripe_subscription", 2),
    ] {
        stripe.reset_requests();
        let walk = walk(&connector, resource, &ListOptions::default()).await;
        assert_eq!(walk.ids(collection_key), stripe.ids(resource), "{resource}");
        assert_eq!(walk.pages, pages, "{resource}");
        assert_eq!(u64::from(walk.requests), stripe.requests(), "{resource}");
        for record in walk
            .records
            .iter()
            .filter(|r| r.collection_key == collection_key)
        {
            assert_eq!(
                Some(record.payload.value().into_owned()),
                stripe.get(resource, &record.external_id)
            );
            assert_eq!(record.created, record.payload.value()["created"].as_i64());
            assert!(!record.archived, "{resource} {}", record.external_id);
        }
    }
}

#[tokio::test]
async fn subscriptions_include_canceled_ones_and_bring_their_items() {
    let stripe = FakeStripe::start(StripeData::generate(&counts())).await;
    let walk = walk(&connector(&stripe), "subscription", &ListOptions::default()).await;

    assert_eq!(walk.ids("stripe_subscription").len(), 120);
    let canceled = walk
        .records
        .iter()
        .filter(|r| {
            r.collection_key == "stripe_subscription" && r.payload.value()["status"] == "canceled"
        })
        .count();
    assert_eq!(canceled, 30);

    // Two embedded items each: nothing beyond the two list pages is fetched.
    assert_eq!(walk.requests, 2);
    assert_eq!(stripe.requests_to("/v1/subscription_items"), 0);
    assert_eq!(
        walk.ids("stripe_subscription_item"),
        stripe.ids("subscription_item")
    );
    assert_items_follow_their_subscription(&walk.records);
}

#[tokio::test]
async fn a_page_fetched_again_from_its_cursor_is_the_same() {
    let stripe = FakeStripe::start(StripeData::generate(&counts())).await;
    let connector = connector(&stripe);
    let options = ListOptions::default();

    let first = connector
        .list_page("customer", None, &options)
        .await
        .expect("page 1");
    assert_eq!(first.records.len(), 100);
    let cursor = first.next_cursor.expect("more customers");
    assert_eq!(Some(&cursor), first.records.last().map(|r| &r.external_id));

    let second = connector
        .list_page("customer", Some(&cursor), &options)
        .await
        .expect("page 2");
    let again = connector
        .list_page("customer", Some(&cursor), &options)
        .await
        .expect("page 2");
    assert_eq!(second.records, again.records);
    assert_eq!(second.next_cursor, again.next_cursor);
    assert_eq!(second.records[0].external_id, stripe.ids("customer")[100]);
}

#[tokio::test]
async fn inactive_products_and_prices_are_archived() {
    let stripe = FakeStripe::start(StripeData::generate(&counts())).await;
    let connector = connector(&stripe);
    for resource in ["product", "price", "plan"] {
        let id = stripe.ids(resource)[1].clone();
        assert!(stripe.update(resource, &id, |object| object["active"] = json!(false)));
        let walk = walk(&connector, resource, &ListOptions::default()).await;
        let archived: Vec<&str> = walk
            .records
            .iter()
            .filter(|r| r.archived)
            .map(|r| r.external_id.as_str())
            .collect();
        assert_eq!(archived, vec![id.as_str()], "{resource}");
    }
}

#[tokio::test]
async fn created_filter_limits_the_walk() {
    let stripe = FakeStripe::start(StripeData::generate(&counts())).await;
    let created = |id: &str| {
        stripe
            .get("customer", id)
            .and_then(|c| c["created"].as_i64())
            .expect("created")
    };
    let ids = stripe.ids("customer");
    let since = created(&ids[149]);
    let expected: Vec<String> = ids
        .iter()
        .filter(|id| created(id) >= since)
        .cloned()
        .collect();
    assert!(expected.len() >= 150 && expected.len() < 250);

    let options = ListOptions {
        created_gte: Some(since),
        ..ListOptions::default()
    };
    let walk = walk(&connector(&stripe), "customer", &options).await;
    assert_eq!(walk.ids("stripe_customer"), expected);
    assert_eq!(walk.pages, 2);
}

/// A subscription with `n` items of its own.
fn subscription_with_items(data: &mut StripeData, id: &str, created: i64, n: usize) {
    let mut subscription = fixture("subscription");
    subscription["id"] = json!(id);
    subscription["created"] = json!(created);
    data.upsert("subscription", subscription);
    let items = (0..n)
        .map(|i| {
            let mut item = fixture("subscription_item");
            item["id"] = json!(format!("si_{id}_{i:03}"));
            item["created"] = json!(created + i as i64);
            item
        })
        .collect();
    data.set_subscription_items(id, items);
}

#[tokio::test]
async fn truncated_items_are_listed_in_full() {
    let mut data = StripeData::empty();
    data.upsert("customer", fixture("customer"));
    subscription_with_items(&mut data, "sub_few", 1_700_000_300, 3);
    subscription_with_items(&mut data, "sub_dozen", 1_700_000_200, 12);
    subscription_with_items(&mut data, "sub_many", 1_700_000_100, 150);
    let stripe = FakeStripe::start(data).await;

    let page = connector(&stripe)
        .list_page("subscription", None, &ListOptions::default())
        .await
        .expect("page");

    // One list request, one for the dozen, two (100 + 50) for the 150.
    assert_eq!(page.requests, 4);
    assert_eq!(stripe.requests_to("/v1/subscription_items"), 3);
    assert_eq!(page.next_cursor, None);
    assert_eq!(page.records.len(), 3 + 3 + 12 + 150);

    let subscriptions: Vec<&Record> = page
        .records
        .iter()
        .filter(|r| r.collection_key == "stripe_subscription")
        .collect();
    let sub_ids: Vec<&str> = subscriptions
        .iter()
        .map(|r| r.external_id.as_str())
        .collect();
    assert_eq!(sub_ids, ["sub_few", "sub_dozen", "sub_many"]);
    // The subscription itself is kept as Stripe sent it, truncated list included.
    assert_eq!(
        subscriptions[2].payload.value()["items"]["has_more"],
        json!(true)
    );
    assert_eq!(
        subscriptions[2].payload.value()["items"]["data"]
            .as_array()
            .map(Vec::len),
        Some(10)
    );

    let items: Vec<String> = page
        .records
        .iter()
        .filter(|r| r.collection_key == "stripe_subscription_item")
        .map(|r| r.external_id.clone())
        .collect();
    assert_eq!(items, stripe.ids("subscription_item"));
    assert_items_follow_their_subscription(&page.records);
}

#[tokio::test]
async fn a_failed_request_is_not_retried_and_the_page_can_be_asked_again() {
    let mut data = StripeData::empty();
    subscription_with_items(&mut data, "sub_many", 1_700_000_100, 30);
    let stripe = FakeStripe::start(data).await;
    let connector = connector(&stripe);
    let options = ListOptions::default();

    let ok = connector
        .list_page("subscription", None, &options)
        .await
        .expect("page");
    assert_eq!(ok.requests, 2);
    assert_eq!(ok.records.len(), 31);

    stripe.reset_requests();
    stripe.fail_next(1, 503);
    let err = connector
        .list_page("subscription", None, &options)
        .await
        .expect_err("503");
    assert!(matches!(err, ConnectorError::Retryable { .. }), "{err:?}");
    assert_eq!(stripe.requests(), 1, "no retries inside the connector");

    let page = connector
        .list_page("subscription", None, &options)
        .await
        .expect("page");
    assert_eq!(page.records, ok.records);
}

#[tokio::test]
async fn provider_errors_reach_the_daemon_classified() {
    let stripe = FakeStripe::start(StripeData::generate(&counts())).await;
    let connector = connector(&stripe);
    let options = ListOptions::default();

    stripe.fail_next(1, 429);
    match connector.list_page("customer", None, &options).await {
        Err(ConnectorError::RateLimited {
            retry_after,
            message,
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
            assert!(message.contains(APP), "{message}");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }

    stripe.fail_next(1, 500);
    let err = connector
        .list_page("price", None, &options)
        .await
        .expect_err("500");
    assert!(matches!(err, ConnectorError::Retryable { .. }), "{err:?}");

    stripe.fail_next(1, 400);
    let err = connector
        .list_page("plan", None, &options)
        .await
        .expect_err("400");
    assert!(matches!(err, ConnectorError::Fatal { .. }), "{err:?}");

    let wrong_key = "sk_test_wrong_key_00000000";
    let rejected = connector_with_key(&stripe, wrong_key)
        .list_page("customer", None, &options)
        .await
        .expect_err("401");
    match rejected {
        ConnectorError::Rejected { message } => {
            assert!(
                message.starts_with("Stripe rejected the API key for app stripe_fake (401)"),
                "{message}"
            );
            assert!(!message.contains(wrong_key), "{message}");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }

    let page = connector
        .list_page("customer", None, &options)
        .await
        .expect("recovers");
    assert_eq!(page.records.len(), 100);
}

/// Every item record sits right after its subscription or a sibling item.
fn assert_items_follow_their_subscription(records: &[Record]) {
    let mut current: Option<&str> = None;
    for record in records {
        match record.collection_key {
            "stripe_subscription" => current = Some(&record.external_id),
            "stripe_subscription_item" => {
                let payload = record.payload.value();
                let owner = payload.get("subscription").and_then(Value::as_str);
                assert_eq!(
                    owner, current,
                    "item {} is out of place",
                    record.external_id
                );
            }
            other => panic!("unexpected collection {other}"),
        }
    }
}

/// A bit of everything, with more than a page of most resources.
fn everything() -> Counts {
    Counts {
        customers: 150,
        invoices: 130,
        lines_per_invoice: 2,
        long_invoice_every: 50,
        long_invoice_lines: 40,
        charges: 120,
        payment_intents: 110,
        refunds: 20,
        others: 105,
        ..Counts::default()
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn every_resource_of_the_table_walks_to_the_fakes_ids() {
    let stripe = FakeStripe::start(StripeData::generate(&everything())).await;
    let connector = connector(&stripe);
    let customers = stripe.ids("customer");
    let mut carried = Vec::new();
    // The connected accounts are walked and fetched in testkit/tests/fake_stripe_connect.rs and
    // tests/api/connect.rs: a platform without any lists none.
    for row in TABLE.iter().filter(|r| !r.connected_accounts) {
        let walked = match row.parent {
            Parent::None => walk(&connector, row.name, &ListOptions::default()).await,
            Parent::Customer => {
                let mut all = Walk {
                    records: Vec::new(),
                    pages: 0,
                    requests: 0,
                };
                for customer in &customers {
                    let options = ListOptions {
                        parent: Some(customer.clone()),
                        ..ListOptions::default()
                    };
                    let theirs = walk(&connector, row.name, &options).await;
                    for record in &theirs.records {
                        assert_eq!(record.payload.value()["customer"], customer.as_str());
                    }
                    all.records.extend(theirs.records);
                }
                all
            }
            Parent::Unlisted => {
                let page = connector
                    .list_page(row.name, None, &ListOptions::default())
                    .await
                    .expect(row.name);
                assert!(page.records.is_empty() && page.next_cursor.is_none());
                continue;
            }
        };
        let ids = walked.ids(row.collection_key);
        match row.parent {
            Parent::Customer => {
                assert_eq!(sorted(ids), sorted(stripe.ids(row.name)), "{}", row.name)
            }
            _ => assert_eq!(ids, stripe.ids(row.name), "{}", row.name),
        }
        assert!(!walked.ids(row.collection_key).is_empty(), "{}", row.name);
        for record in walked
            .records
            .iter()
            .filter(|r| r.collection_key == row.collection_key)
        {
            let served = stripe.get(row.name, &record.external_id);
            assert_eq!(
                Some(record.payload.value().into_owned()),
                served,
                "{}",
                row.name
            );
        }
        if let Some(child) = &row.child {
            let name = child.collection_key.trim_start_matches("stripe_");
            assert_eq!(walked.ids(child.collection_key), stripe.ids(name), "{name}");
        }
        for embedded in row.embedded {
            let key = TABLE
                .iter()
                .find(|r| r.name == embedded.resource)
                .unwrap()
                .collection_key;
            carried.extend(walked.ids(key));
        }
    }
    // Discounts have no list: they come with the customers that carry them.
    assert_eq!(sorted(carried), sorted(stripe.ids("discount")));
    assert!(!stripe.ids("discount").is_empty());
}

#[tokio::test]
async fn truncated_lines_are_listed_in_full() {
    let mut data = StripeData::generate(&Counts::everything());
    let note = data.ids("credit_note")[0].clone();
    let lines: Vec<Value> = (0..25)
        .map(|i| {
            let mut line = fixture("credit_note_line_item");
            line["id"] = json!(format!("cnli_long{i:02}"));
            line
        })
        .collect();
    data.set_children("credit_note", &note, lines);
    let stripe = FakeStripe::start(data).await;
    let connector = connector(&stripe);

    let long = stripe
        .ids("invoice")
        .into_iter()
        .find(|id| stripe.get("invoice", id).unwrap()["lines"]["total_count"] == 40)
        .expect("an invoice with 40 lines");
    stripe.reset_requests();
    let page = connector
        .list_page("invoice", None, &ListOptions::default())
        .await
        .expect("invoices");
    // One list request, one for the long invoice's lines.
    assert_eq!(page.requests, 2);
    assert_eq!(stripe.requests_to(&format!("/v1/invoices/{long}/lines")), 1);
    let lines: Vec<&Record> = page
        .records
        .iter()
        .filter(|r| {
            r.collection_key == "stripe_invoice_line_item"
                && r.payload.value()["invoice"] == long.as_str()
        })
        .collect();
    assert_eq!(lines.len(), 40);
    let parent = page.records.iter().find(|r| r.external_id == long).unwrap();
    assert_eq!(parent.payload.value()["lines"]["has_more"], true);

    let walked = walk(&connector, "credit_note", &ListOptions::default()).await;
    let note_lines: Vec<&Record> = walked
        .records
        .iter()
        .filter(|r| r.payload.value()["credit_note"] == note.as_str())
        .collect();
    assert_eq!(
        note_lines.len(),
        25,
        "the connector names the parent Stripe leaves out"
    );
    assert_eq!(note_lines[24].external_id, "cnli_long24");
    assert!(stripe
        .get("credit_note_line_item", "cnli_long00")
        .unwrap()
        .get("credit_note")
        .is_none());
}

#[tokio::test]
async fn fetch_object_returns_every_resource() {
    let stripe = FakeStripe::start(StripeData::generate(&Counts::everything())).await;
    let connector = connector(&stripe);
    // The connected accounts are walked and fetched in testkit/tests/fake_stripe_connect.rs and
    // tests/api/connect.rs: a platform without any lists none.
    for row in TABLE.iter().filter(|r| !r.connected_accounts) {
        let ids = stripe.ids(row.name);
        assert!(!ids.is_empty(), "{}", row.name);
        if row.retrieve.is_none() {
            let err = connector
                .fetch_object(row.name, &ids[0], None)
                .await
                .expect_err(row.name);
            assert!(
                matches!(err, ConnectorError::Fatal { .. }),
                "{}: {err:?}",
                row.name
            );
            continue;
        }
        for id in &ids {
            let change = connector
                .fetch_object(row.name, id, None)
                .await
                .unwrap_or_else(|err| panic!("{} {id}: {err}", row.name));
            assert_eq!(change.resource, row.name);
            assert!(!change.deleted, "{} {id}", row.name);
            assert_eq!(change.record.collection_key, row.collection_key);
            assert_eq!(&change.record.external_id, id);
            assert_eq!(
                Some(change.record.payload.value().into_owned()),
                stripe.get(row.name, id),
                "{}",
                row.name
            );
            if let Some(child) = &row.child {
                let name = child.collection_key.trim_start_matches("stripe_");
                let set = change.children.as_ref().expect("complete children");
                let served = stripe.get(row.name, id).unwrap();
                let want = served[child.field]["total_count"].as_u64().unwrap() as usize;
                assert_eq!(set.records.len(), want, "{name} of {id}");
                for record in &set.records {
                    assert!(stripe.get(name, &record.external_id).is_some(), "{name}");
                    assert_eq!(record.payload.value()[child.parent_field], id.as_str());
                }
            }
        }
    }
}

#[tokio::test]
async fn a_refused_created_filter_is_reported_as_such() {
    let stripe = FakeStripe::start(StripeData::generate(&Counts::everything())).await;
    let connector = connector(&stripe);
    let filtered = ListOptions {
        created_gte: Some(1),
        created_lt: Some(2_000_000_000),
        ..ListOptions::default()
    };
    let page = connector
        .list_page("invoice", None, &filtered)
        .await
        .expect("filtered");
    assert_eq!(
        page.records
            .iter()
            .filter(|r| r.collection_key == "stripe_invoice")
            .count(),
        10
    );

    stripe.refuse_created_filter(true);
    for resource in ["customer", "invoice", "checkout_session"] {
        let err = connector
            .list_page(resource, None, &filtered)
            .await
            .expect_err(resource);
        match err {
            ConnectorError::FilterRefused { message } => {
                assert!(message.contains("Unexpected created"), "{message}");
            }
            other => panic!("{resource}: expected FilterRefused, got {other:?}"),
        }
    }
    // Unfiltered, or a list the connector never filters, still works.
    let walked = walk(&connector, "invoice", &ListOptions::default()).await;
    assert_eq!(walked.ids("stripe_invoice"), stripe.ids("invoice"));
    let tax_id = stripe.ids("tax_id")[0].clone();
    let holder = stripe.get("tax_id", &tax_id).unwrap()["customer"]
        .as_str()
        .unwrap()
        .to_owned();
    let options = ListOptions {
        parent: Some(holder),
        ..filtered
    };
    let theirs = walk(&connector, "tax_id", &options).await;
    assert_eq!(theirs.ids("stripe_tax_id"), [tax_id]);
}

#[tokio::test]
async fn a_deleted_customer_has_nothing_listed_under_it() {
    let stripe = FakeStripe::start(StripeData::generate(&Counts::everything())).await;
    let connector = connector(&stripe);
    let tax_id = stripe.ids("tax_id")[0].clone();
    let holder = stripe.get("tax_id", &tax_id).unwrap()["customer"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(stripe.delete("customer", &holder));
    let options = ListOptions {
        parent: Some(holder),
        ..ListOptions::default()
    };
    let page = connector
        .list_page("tax_id", None, &options)
        .await
        .expect("an empty page");
    assert!(page.records.is_empty());
    assert_eq!(page.next_cursor, None);
    assert_eq!(page.requests, 1);
}
