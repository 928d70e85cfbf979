//! The fake's event log over real HTTP: what each mutation records, the clock, `GET /v1/events`
//! (filters, pagination, retention) and `GET /v1/events/{id}`.

mod support;

use serde_json::{json, Value};
use supasaasy_stripe::resources::{StripeResource, TABLE};
use supasaasy_testkit::fake_stripe::{
    fixture, Counts, FakeStripe, StripeData, API_VERSION, RETENTION_SECS,
};
use support::{ids, Client};

/// The generated data's "now".
const NOW: i64 = 1_750_000_000;
/// Where tests pin the fake's clock.
const T: i64 = NOW + 1_000;

async fn start() -> (FakeStripe, Client) {
    let counts = Counts {
        customers: 5,
        products: 2,
        subscriptions: 4,
        canceled_every: 0,
        ..Counts::default()
    };
    let stripe = FakeStripe::start(StripeData::generate_at(&counts, NOW)).await;
    stripe.set_clock(Some(T));
    let client = Client::new(stripe.base_url(), stripe.api_key());
    (stripe, client)
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn new_events(stripe: &FakeStripe, seen: &mut usize) -> Vec<Value> {
    let all = stripe.events();
    let fresh = all[*seen..].to_vec();
    *seen = all.len();
    fresh
}

#[tokio::test]
async fn mutations_record_stripe_events_with_snapshots() {
    let (stripe, client) = start().await;
    assert!(stripe.events().is_empty(), "generated data records nothing");
    assert_eq!(client.ok("/v1/events").await["data"], json!([]));
    let mut seen = 0;

    let mut customer = fixture("customer");
    customer["id"] = json!("cus_events1");
    customer["email"] = json!("old@example.com");
    customer.as_object_mut().unwrap().remove("created");
    stripe.upsert("customer", customer);
    let created = stripe.last_event().unwrap();
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("evt_") && id[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(created["object"], "event");
    assert_eq!(created["api_version"], API_VERSION);
    assert_eq!(created["created"], T);
    assert_eq!(created["type"], "customer.created");
    assert_eq!(created["livemode"], false);
    assert_eq!(created["pending_webhooks"], 1);
    assert_eq!(
        created["request"],
        json!({"id": null, "idempotency_key": null})
    );
    assert_eq!(
        created["data"]["object"]["created"], T,
        "created from the clock"
    );
    assert_eq!(
        created["data"]["object"],
        client.ok("/v1/customers/cus_events1").await
    );
    assert!(created["data"].get("previous_attributes").is_none());

    stripe.update("customer", "cus_events1", |c| {
        c["email"] = json!("new@example.com");
        c["metadata"] = json!({"tier": "gold"});
    });
    let updated = stripe.last_event().unwrap();
    assert_eq!(updated["type"], "customer.updated");
    assert_eq!(updated["data"]["object"]["email"], "new@example.com");
    assert_eq!(
        updated["data"]["previous_attributes"],
        json!({"email": "old@example.com", "metadata": {}})
    );

    let before_delete = stripe.get("customer", "cus_events1").unwrap();
    assert!(stripe.delete("customer", "cus_events1"));
    let deleted = stripe.last_event().unwrap();
    assert_eq!(deleted["type"], "customer.deleted");
    let mut want = before_delete;
    want["deleted"] = json!(true);
    assert_eq!(deleted["data"]["object"], want, "the full last state");
    assert_eq!(
        types(&new_events(&stripe, &mut seen)),
        ["customer.created", "customer.updated", "customer.deleted"]
    );

    for resource in ["product", "price", "plan"] {
        let id = stripe.ids(resource)[0].clone();
        let last = stripe.get(resource, &id).unwrap();
        stripe.update(resource, &id, |o| o["active"] = json!(false));
        let event = stripe.last_event().unwrap();
        assert_eq!(
            event["data"]["previous_attributes"],
            json!({"active": true})
        );
        assert!(stripe.delete(resource, &id));
        assert_eq!(stripe.last_event().unwrap()["data"]["object"]["id"], id);
        assert!(stripe.last_event().unwrap()["data"]["object"]
            .get("deleted")
            .is_none());
        let mut fresh = last;
        fresh["id"] = json!(format!("{id}_new"));
        stripe.upsert(resource, fresh);
        assert_eq!(
            types(&new_events(&stripe, &mut seen)),
            ["updated", "deleted", "created"].map(|a| format!("{resource}.{a}"))
        );
    }
    // Deleting what is not there records nothing.
    assert!(!stripe.delete("customer", "cus_nobody"));
    assert!(new_events(&stripe, &mut seen).is_empty());
}

#[tokio::test]
async fn subscriptions_record_created_updated_and_deleted_on_cancel() {
    let (stripe, client) = start().await;
    let mut seen = 0;
    let customer = stripe.ids("customer")[0].clone();
    let price = stripe.get("price", &stripe.ids("price")[0]).unwrap();
    let item =
        |id: &str| json!({"id": id, "object": "subscription_item", "price": price, "quantity": 1});

    let mut sub = fixture("subscription");
    sub["id"] = json!("sub_events1");
    sub["customer"] = json!(customer);
    sub["status"] = json!("active");
    sub["items"] = json!({"object": "list", "data": [item("si_a"), item("si_b")]});
    stripe.upsert("subscription", sub);
    let created = stripe.last_event().unwrap();
    assert_eq!(created["type"], "customer.subscription.created");
    let served = client.ok("/v1/subscriptions/sub_events1").await;
    assert_eq!(created["data"]["object"], served, "rendered as a retrieve");
    assert_eq!(
        ids(created["data"]["object"]["items"]["data"]
            .as_array()
            .unwrap()),
        ["si_a", "si_b"]
    );

    stripe.update("subscription", "sub_events1", |s| {
        s["status"] = json!("past_due")
    });
    let updated = stripe.last_event().unwrap();
    assert_eq!(updated["type"], "customer.subscription.updated");
    assert_eq!(
        updated["data"]["previous_attributes"],
        json!({"status": "active"})
    );
    assert_eq!(
        updated["data"]["object"]["items"], served["items"],
        "items still embedded"
    );

    let old_items = stripe.get("subscription", "sub_events1").unwrap()["items"].clone();
    stripe.set_subscription_items("sub_events1", vec![item("si_c")]);
    let items = stripe.last_event().unwrap();
    assert_eq!(items["type"], "customer.subscription.updated");
    assert_eq!(
        items["data"]["previous_attributes"],
        json!({"items": old_items})
    );
    assert_eq!(
        ids(items["data"]["object"]["items"]["data"].as_array().unwrap()),
        ["si_c"]
    );

    let mut changed = stripe.get("subscription_item", "si_c").unwrap();
    changed["quantity"] = json!(3);
    stripe.upsert("subscription_item", changed);
    let item_event = stripe.last_event().unwrap();
    assert_eq!(item_event["type"], "customer.subscription.updated");
    assert_eq!(
        item_event["data"]["object"]["items"]["data"][0]["quantity"],
        3
    );

    stripe.update("subscription", "sub_events1", |s| {
        s["status"] = json!("canceled");
        s["canceled_at"] = json!(T);
    });
    let ended = stripe.last_event().unwrap();
    assert_eq!(ended["type"], "customer.subscription.deleted");
    assert_eq!(ended["data"]["object"]["status"], "canceled");
    assert!(ended["data"].get("previous_attributes").is_none());
    // Ended, not gone.
    assert_eq!(
        client.ok("/v1/subscriptions/sub_events1").await["status"],
        "canceled"
    );
    let all = client.walk("/v1/subscriptions?status=all", 100).await;
    assert!(ids(&all).contains(&"sub_events1".to_owned()));

    // A later change to the canceled subscription is an update again; deleting it records nothing.
    stripe.update("subscription", "sub_events1", |s| {
        s["metadata"] = json!({"k": "v"})
    });
    assert_eq!(
        stripe.last_event().unwrap()["type"],
        "customer.subscription.updated"
    );
    assert!(stripe.delete("subscription", "sub_events1"));
    assert_eq!(
        types(&new_events(&stripe, &mut seen)),
        [
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.updated",
            "customer.subscription.updated",
            "customer.subscription.deleted",
            "customer.subscription.updated",
        ]
    );
}

#[tokio::test]
async fn a_pinned_clock_stamps_same_second_events_listed_newest_recorded_first() {
    let (stripe, client) = start().await;
    let customers = stripe.ids("customer");
    for (i, id) in customers.iter().take(3).enumerate() {
        stripe.update("customer", id, |c| c["name"] = json!(format!("same {i}")));
    }
    stripe.advance_clock(1);
    stripe.update("customer", &customers[3], |c| c["name"] = json!("later"));
    let events = stripe.events();
    let created: Vec<i64> = events
        .iter()
        .map(|e| e["created"].as_i64().unwrap())
        .collect();
    assert_eq!(created, [T, T, T, T + 1]);
    assert_eq!(stripe.now(), T + 1);

    let listed = client.ok("/v1/events").await["data"]
        .as_array()
        .unwrap()
        .clone();
    let mut newest_first = ids(&events);
    newest_first.reverse();
    assert_eq!(
        ids(&listed),
        newest_first,
        "ties by recording order, newest first"
    );
    assert_eq!(listed[3]["data"]["object"]["name"], "same 0");

    stripe.set_clock(None);
    stripe.update("customer", &customers[0], |c| {
        c["name"] = json!("real time")
    });
    let real = stripe.last_event().unwrap()["created"].as_i64().unwrap();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((wall - 5..=wall).contains(&real));
}

/// Records events of several types over several seconds: per second, a customer update, a product
/// update and a price update.
fn record_mixed(stripe: &FakeStripe, seconds: i64) {
    let (customer, product, price) = (
        stripe.ids("customer")[0].clone(),
        stripe.ids("product")[0].clone(),
        stripe.ids("price")[0].clone(),
    );
    for s in 0..seconds {
        stripe.set_clock(Some(T + s));
        stripe.update("customer", &customer, |c| c["balance"] = json!(s));
        stripe.update("product", &product, |p| p["name"] = json!(format!("p{s}")));
        stripe.update("price", &price, |p| p["nickname"] = json!(format!("n{s}")));
    }
}

#[tokio::test]
async fn list_filters_by_type_pattern_types_and_created() {
    let (stripe, client) = start().await;
    record_mixed(&stripe, 4);
    let sub = stripe.ids("subscription")[0].clone();
    stripe.update("subscription", &sub, |s| s["metadata"] = json!({"x": "1"}));
    let listed = |q: &str| {
        let client = &client;
        let q = q.to_owned();
        async move { client.walk(&format!("/v1/events?{q}"), 100).await }
    };

    let exact = listed("type=product.updated").await;
    assert_eq!(exact.len(), 4);
    assert!(types(&exact).iter().all(|t| *t == "product.updated"));
    let customer_family = listed("type=customer.*").await;
    assert_eq!(types(&customer_family)[0], "customer.subscription.updated");
    assert_eq!(customer_family.len(), 5);
    let two = listed("types[]=product.updated&types[]=price.updated").await;
    assert_eq!(two.len(), 8);
    assert!(types(&two).iter().all(|t| *t != "customer.updated"));
    assert!(listed("types%5B0%5D=nothing.happened").await.is_empty());

    assert_eq!(listed(&format!("created={}", T + 1)).await.len(), 3);
    assert_eq!(listed(&format!("created[gt]={}", T + 1)).await.len(), 7);
    assert_eq!(listed(&format!("created[gte]={}", T + 1)).await.len(), 10);
    assert_eq!(listed(&format!("created[lt]={}", T + 1)).await.len(), 3);
    assert_eq!(listed(&format!("created[lte]={}", T + 1)).await.len(), 6);
    let window = listed(&format!(
        "created[gte]={}&created[lt]={}&type=price.*",
        T + 1,
        T + 3
    ))
    .await;
    assert_eq!(window.len(), 2);
    assert!(window
        .iter()
        .all(|e| e["created"] == T + 2 || e["created"] == T + 1));

    let many: Vec<String> = (0..21).map(|i| format!("types[]=t{i}.updated")).collect();
    let refused = client.get(&format!("/v1/events?{}", many.join("&"))).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json()["error"]["message"],
        "You may only specify up to 20 types"
    );
    assert_eq!(
        client
            .get(&format!("/v1/events?{}", many[..20].join("&")))
            .await
            .status,
        200
    );
    let both = client
        .get("/v1/events?type=customer.*&types[]=price.updated")
        .await;
    assert_eq!(both.status, 400);
    assert_eq!(client.get("/v1/events?status=all").await.status, 400);
    assert_eq!(client.get("/v1/events?limit=101").await.status, 400);
}

#[tokio::test]
async fn pages_walk_newest_first_both_ways() {
    let (stripe, client) = start().await;
    record_mixed(&stripe, 9);
    let mut expected = ids(&stripe.events());
    expected.reverse();
    assert_eq!(expected.len(), 27);

    let first = client.ok("/v1/events").await;
    assert_eq!(first["url"], "/v1/events");
    assert_eq!(first["data"].as_array().unwrap().len(), 10, "default limit");
    assert_eq!(first["has_more"], true);
    for limit in [1, 4, 10, 100] {
        assert_eq!(ids(&client.walk("/v1/events", limit).await), expected);
    }

    let before = client
        .ok(&format!(
            "/v1/events?limit=5&ending_before={}",
            expected[12]
        ))
        .await;
    assert_eq!(ids(before["data"].as_array().unwrap()), expected[7..12]);
    assert_eq!(before["has_more"], true);
    let unknown = client.get("/v1/events?starting_after=evt_unknown").await;
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["error"]["code"], "resource_missing");
}

#[tokio::test]
async fn events_past_thirty_days_are_not_served() {
    let (stripe, client) = start().await;
    let old = stripe.push_event(json!({
        "object": "event", "type": "customer.created", "created": T - RETENTION_SECS - 1,
        "data": {"object": {"id": "cus_old", "object": "customer"}}
    }));
    let edge = stripe.push_event(json!({
        "id": "evt_edge", "object": "event", "type": "customer.updated",
        "created": T - RETENTION_SECS, "data": {"object": {"id": "cus_old", "object": "customer"}}
    }));
    assert_eq!(edge, "evt_edge");
    assert!(old.starts_with("evt_"));
    let recent = stripe.push_event(json!({"object": "event", "type": "ping"}));
    assert_eq!(
        stripe.event(&recent).unwrap()["created"],
        T,
        "created from the clock"
    );

    assert_eq!(
        ids(&client.walk("/v1/events", 10).await),
        [recent.clone(), edge.clone()]
    );
    assert_eq!(client.get(&format!("/v1/events/{old}")).await.status, 404);
    assert_eq!(
        client.ok(&format!("/v1/events/{edge}")).await["id"],
        "evt_edge"
    );
    assert!(
        stripe.event(&old).is_some(),
        "the accessor ignores retention"
    );
    assert_eq!(
        ids(&stripe.events()),
        [old.clone(), edge.clone(), recent.clone()]
    );

    stripe.advance_clock(1);
    assert_eq!(ids(&client.walk("/v1/events", 10).await), [recent]);
    assert_eq!(client.get(&format!("/v1/events/{edge}")).await.status, 404);
}

#[tokio::test]
async fn retrieve_serves_the_event_as_listed() {
    let (stripe, client) = start().await;
    let id = stripe.ids("customer")[0].clone();
    stripe.update("customer", &id, |c| c["name"] = json!("Retrieved"));
    let event = stripe.last_event().unwrap();
    let event_id = event["id"].as_str().unwrap();
    let served = client.ok(&format!("/v1/events/{event_id}")).await;
    assert_eq!(served, event);
    assert_eq!(Some(served), stripe.event(event_id));
    assert_eq!(client.ok("/v1/events").await["data"][0], event);

    let missing = client.get("/v1/events/evt_missing").await;
    assert_eq!(missing.status, 404);
    let error = &missing.json()["error"];
    assert_eq!(error["code"], "resource_missing");
    assert_eq!(error["message"], "No such event: 'evt_missing'");
    assert_eq!(client.get("/v1/events/evt_x/more").await.status, 404);
}

#[tokio::test]
#[should_panic(expected = "already recorded")]
async fn pushing_a_duplicate_event_id_is_a_test_bug() {
    let (stripe, _client) = start().await;
    stripe.push_event(json!({"id": "evt_twice", "type": "ping"}));
    stripe.push_event(json!({"id": "evt_twice", "type": "ping"}));
}

/// The type recording a new object of `row`: its `….created` type, else its first.
fn created_type(row: &StripeResource) -> Option<&'static str> {
    let created = row
        .events
        .iter()
        .find(|t| t.rsplit('.').next() == Some("created"));
    created.or(row.events.first()).copied()
}

/// The type recording a changed object of `row`: its first `….updated` type, else its first
/// that does not mean gone.
fn updated_type(row: &StripeResource) -> Option<&'static str> {
    let updated = row.events.iter().find(|t| t.ends_with(".updated"));
    updated
        .or_else(|| row.events.iter().find(|t| !row.deleted_by.contains(t)))
        .copied()
}

/// A copy of an object of `row` with a new id, its children left out (they belong to the
/// original).
fn copy_of(stripe: &FakeStripe, row: &StripeResource, id: &str) -> Value {
    let mut object = stripe.get(row.name, &stripe.ids(row.name)[0]).unwrap();
    object["id"] = json!(id);
    if let Some(child) = &row.child {
        object.as_object_mut().unwrap().remove(child.field);
    }
    object
}

#[tokio::test]
async fn every_row_records_the_types_its_row_lists() {
    let stripe = FakeStripe::start(StripeData::generate_at(&Counts::everything(), NOW)).await;
    stripe.set_clock(Some(T));
    let mut seen = 0;
    // Account events are the platform's, recorded by `update_account` and `deauthorize` (see
    // fake_stripe_connect.rs).
    for row in TABLE.iter().filter(|r| !r.connected_accounts) {
        let id = format!("{}_evtest", row.name);
        stripe.upsert(row.name, copy_of(&stripe, row, &id));
        let served = stripe.get(row.name, &id).unwrap();
        let created = new_events(&stripe, &mut seen);
        assert_eq!(
            types(&created),
            created_type(row).into_iter().collect::<Vec<_>>(),
            "{}",
            row.name
        );
        for event in &created {
            assert_eq!(event["data"]["object"], served, "{}", row.name);
        }

        stripe.update(row.name, &id, |o| o["metadata"] = json!({"evtest": "1"}));
        let updated = new_events(&stripe, &mut seen);
        assert_eq!(
            types(&updated),
            updated_type(row).into_iter().collect::<Vec<_>>(),
            "{}",
            row.name
        );
        for event in &updated {
            assert_eq!(
                event["data"]["previous_attributes"],
                json!({"metadata": served["metadata"]}),
                "{}",
                row.name
            );
            assert_eq!(event["data"]["object"]["metadata"], json!({"evtest": "1"}));
        }

        let last = stripe.get(row.name, &id).unwrap();
        assert!(stripe.delete(row.name, &id));
        let deleted = new_events(&stripe, &mut seen);
        assert_eq!(
            types(&deleted),
            row.deleted_by
                .first()
                .into_iter()
                .copied()
                .collect::<Vec<_>>(),
            "{}",
            row.name
        );
        for event in &deleted {
            let mut want = last.clone();
            if row.name == "customer" {
                want["deleted"] = json!(true);
            }
            assert_eq!(event["data"]["object"], want, "{}", row.name);
        }
    }
    assert!(
        TABLE.iter().any(|r| r.events.is_empty()),
        "balance transactions"
    );
}

#[tokio::test]
async fn a_child_change_is_an_update_of_its_parent() {
    let stripe = FakeStripe::start(StripeData::generate_at(&Counts::everything(), NOW)).await;
    stripe.set_clock(Some(T));
    let mut seen = 0;
    for row in TABLE.iter().filter(|r| r.child.is_some()) {
        let child = row.child.as_ref().unwrap();
        let child_name = child.collection_key.trim_start_matches("stripe_");
        let parent = stripe.ids(row.name)[0].clone();
        let updated = updated_type(row).unwrap();
        let before = stripe.get(row.name, &parent).unwrap();

        let mut item = fixture(child.object);
        item["id"] = json!(format!("{child_name}_evtest"));
        stripe.set_children(row.name, &parent, vec![item.clone()]);
        let events = new_events(&stripe, &mut seen);
        assert_eq!(types(&events), [updated], "{child_name}");
        let served = stripe.get(row.name, &parent).unwrap();
        assert_eq!(events[0]["data"]["object"], served, "{child_name}");
        assert_eq!(
            events[0]["data"]["previous_attributes"],
            json!({child.field: before[child.field]}),
            "{child_name}"
        );
        assert_eq!(served[child.field]["total_count"], 1);

        item["metadata"] = json!({"evtest": "1"});
        item[child.parent_field] = json!(parent);
        stripe.upsert(child_name, item.clone());
        let events = new_events(&stripe, &mut seen);
        assert_eq!(types(&events), [updated], "{child_name}");
        let embedded = &events[0]["data"]["object"][child.field]["data"][0];
        assert_eq!(embedded["metadata"], json!({"evtest": "1"}), "{child_name}");

        assert!(stripe.delete(child_name, item["id"].as_str().unwrap()));
        let events = new_events(&stripe, &mut seen);
        assert_eq!(types(&events), [updated], "{child_name}");
        assert_eq!(events[0]["data"]["object"][child.field]["total_count"], 0);
    }
}
