//! Every row of the connector's table served over real HTTP, in one loop: top-level lists and
//! retrieves with the list protocol, children embedded and listed in full, lists per customer
//! and their 404s, and the routes an unlisted resource does not have.

mod support;

use std::collections::HashSet;

use serde_json::{json, Value};
use supasaasy_stripe::resources::{Child, ChildList, Parent, StripeResource, TABLE};
use supasaasy_testkit::fake_stripe::{fixture, Counts, FakeStripe, StripeData};
use support::{ids, Client};

const NOW: i64 = 1_750_000_000;

async fn start(data: StripeData) -> (FakeStripe, Client) {
    let stripe = FakeStripe::start(data).await;
    let client = Client::new(stripe.base_url(), stripe.api_key());
    (stripe, client)
}

/// When an object was made, as the fake orders it: `created`, or an invoice item's `date`.
fn time(object: &Value) -> i64 {
    let at = object.get("created").or_else(|| object.get("date"));
    at.and_then(Value::as_i64).expect("a time")
}

/// `path` with the row's fixed parameters (`status=all`).
fn with_params(row: &StripeResource, path: &str) -> String {
    let params: Vec<String> = row.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    match params.is_empty() {
        true => path.to_owned(),
        false => format!("{path}?{}", params.join("&")),
    }
}

/// The name tests use for a row's children.
fn child_name(child: &Child) -> &'static str {
    child.collection_key.trim_start_matches("stripe_")
}

/// The objects a list served, checked against the fake and the row's fixture.
fn check_objects(stripe: &FakeStripe, row: &StripeResource, objects: &[Value]) {
    let keys: Vec<String> = fixture(row.object)
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    for object in objects {
        let id = object["id"].as_str().unwrap();
        assert_eq!(object["object"], row.object, "{}", row.name);
        assert_eq!(
            Some(object),
            stripe.get(row.name, id).as_ref(),
            "{}",
            row.name
        );
        for key in &keys {
            assert!(object.get(key).is_some(), "{} {id} lacks {key}", row.name);
        }
    }
    assert!(
        objects.windows(2).all(|w| time(&w[0]) >= time(&w[1])),
        "{} newest first",
        row.name
    );
}

async fn top_level(stripe: &FakeStripe, client: &Client, row: &StripeResource) {
    let path = format!("/v1/{}", row.path);
    let listed = with_params(row, &path);
    let all = client.walk(&listed, 100).await;
    assert_eq!(ids(&all), stripe.ids(row.name), "{}", row.name);
    assert!(all.len() >= 3, "{}: {} objects", row.name, all.len());
    check_objects(stripe, row, &all);
    assert_eq!(client.walk(&listed, 2).await, all, "{} by twos", row.name);
    let sep = if listed.contains('?') { '&' } else { '?' };
    let first = client.ok(&format!("{listed}{sep}limit=1")).await;
    assert_eq!(first["url"], path, "{}", row.name);
    assert_eq!(first["has_more"], true, "{}", row.name);
    // Back from the oldest, towards the newest.
    let oldest = all.last().unwrap()["id"].as_str().unwrap();
    let back = client
        .ok(&format!("{listed}{sep}limit=100&ending_before={oldest}"))
        .await;
    assert_eq!(
        back["data"].as_array().unwrap()[..],
        all[..all.len() - 1],
        "{}",
        row.name
    );
    let expanded = format!("{listed}{sep}expand%5B%5D=data.payments&expand[]=data.customer");
    assert_eq!(
        client.ok(&expanded).await["data"][0],
        all[0],
        "{}",
        row.name
    );

    let middle = time(&all[all.len() / 2]);
    let window = format!("{listed}{sep}created%5Bgte%5D={middle}");
    if row.created_filter {
        let got = client.walk(&window, 100).await;
        let want: Vec<&Value> = all.iter().filter(|o| time(o) >= middle).collect();
        assert_eq!(got.iter().collect::<Vec<_>>(), want, "{}", row.name);
    } else {
        let refused = client.get(&window).await;
        assert_eq!(refused.status, 400, "{}", row.name);
        assert_eq!(
            refused.json()["error"]["param"],
            "created[gte]",
            "{}",
            row.name
        );
    }
    assert_eq!(client.get(&format!("{path}?bogus=1")).await.status, 400);
    let retrieve = row.retrieve.expect("a listed row retrieves");
    for object in &all {
        let id = object["id"].as_str().unwrap();
        assert_eq!(&client.ok(&format!("/v1/{retrieve}/{id}")).await, object);
    }
    let missing = client.get(&format!("/v1/{retrieve}/nope_123")).await;
    assert_eq!(missing.status, 404, "{}", row.name);
    assert_eq!(missing.json()["error"]["code"], "resource_missing");
}

async fn per_customer(stripe: &FakeStripe, client: &Client, row: &StripeResource) {
    let retrieve = row.retrieve.expect("per-customer rows retrieve");
    let mut seen = Vec::new();
    for customer in stripe.ids("customer") {
        let path = format!("/v1/customers/{customer}/{}", row.path);
        let theirs = client.walk(&path, 1).await;
        check_objects(stripe, row, &theirs);
        assert!(theirs.iter().all(|o| o["customer"] == customer.as_str()));
        assert_eq!(client.ok(&path).await["url"], path);
        for object in &theirs {
            let id = object["id"].as_str().unwrap();
            assert_eq!(&client.ok(&format!("/v1/{retrieve}/{id}")).await, object);
        }
        seen.extend(ids(&theirs));
    }
    let mut all = stripe.ids(row.name);
    assert!(!all.is_empty(), "{}", row.name);
    all.sort();
    seen.sort();
    assert_eq!(
        seen, all,
        "{}: every object in its customer's list",
        row.name
    );
    let missing = client
        .get(&format!("/v1/customers/cus_nope/{}", row.path))
        .await;
    assert_eq!(missing.status, 404, "{}", row.name);
    assert_eq!(missing.json()["error"]["code"], "resource_missing");
    let holder = stripe.get(row.name, &all[0]).unwrap()["customer"].clone();
    let path = format!("/v1/customers/{}/{}", holder.as_str().unwrap(), row.path);
    let refused = client.get(&format!("{path}?created[gte]=0")).await;
    assert_eq!(refused.status, 400, "{}", row.name);
    assert_eq!(client.get(&format!("/v1/{}", row.path)).await.status, 404);
}

async fn children(stripe: &FakeStripe, client: &Client, row: &StripeResource, child: &Child) {
    let name = child_name(child);
    let mut listed = Vec::new();
    for parent in stripe.ids(row.name) {
        let served = stripe.get(row.name, &parent).unwrap();
        let embedded = &served[child.field];
        let url = embedded["url"].as_str().unwrap().to_owned();
        let full = client.walk(&url, 100).await;
        let total = full.len();
        assert_eq!(embedded["object"], "list");
        assert_eq!(embedded["total_count"], total, "{name}");
        assert_eq!(embedded["has_more"], total > 10, "{name}");
        assert_eq!(
            embedded["data"].as_array().unwrap()[..],
            full[..total.min(10)]
        );
        assert_eq!(client.walk(&url, 3).await, full, "{name} by threes");
        for item in &full {
            assert_eq!(item["object"], child.object, "{name}");
            assert_eq!(
                Some(item),
                stripe.get(name, item["id"].as_str().unwrap()).as_ref()
            );
        }
        listed.extend(ids(&full));
    }
    assert_eq!(listed, stripe.ids(name), "{name}");
    let truncated = stripe
        .ids(row.name)
        .into_iter()
        .any(|p| stripe.get(row.name, &p).unwrap()[child.field]["has_more"] == true);
    match child.list {
        ChildList::Query { path, param } => {
            let missing = client.get(&format!("/v1/{path}?{param}=nope_1")).await;
            assert_eq!(missing.status, 404, "{name}");
            assert_eq!(client.get(&format!("/v1/{path}")).await.status, 400);
        }
        ChildList::Nested { segment } => {
            let missing = client
                .get(&format!("/v1/{}/nope_1/{segment}", row.path))
                .await;
            assert_eq!(missing.status, 404, "{name}");
            assert_eq!(missing.json()["error"]["code"], "resource_missing");
        }
    }
    if row.name == "invoice" {
        assert!(truncated, "a long invoice");
    }
}

#[tokio::test]
async fn every_row_of_the_table_is_served() {
    let (stripe, client) = start(StripeData::generate_at(&Counts::everything(), NOW)).await;
    let mut served = HashSet::new();
    // `/v1/accounts` serves the connected accounts (fake_stripe_connect.rs).
    for row in TABLE.iter().filter(|r| !r.connected_accounts) {
        match row.parent {
            Parent::None => top_level(&stripe, &client, row).await,
            Parent::Customer => per_customer(&stripe, &client, row).await,
            Parent::Unlisted => {
                assert!(!stripe.ids(row.name).is_empty(), "{}", row.name);
                assert!(row.retrieve.is_none(), "{}", row.name);
            }
        }
        if let Some(child) = &row.child {
            children(&stripe, &client, row, child).await;
        }
        served.insert(row.name);
    }
    let accounts = TABLE.iter().filter(|r| r.connected_accounts).count();
    assert_eq!(served.len() + accounts, TABLE.len());
}

#[tokio::test]
async fn a_deleted_customer_has_no_lists_but_its_objects_retrieve() {
    let (stripe, client) = start(StripeData::generate_at(&Counts::everything(), NOW)).await;
    let tax_id = stripe.ids("tax_id")[0].clone();
    let customer = stripe.get("tax_id", &tax_id).unwrap()["customer"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/customers/{customer}/tax_ids");
    assert_eq!(
        ids(&client.walk(&path, 10).await),
        std::slice::from_ref(&tax_id)
    );
    assert!(stripe.delete("customer", &customer));
    let gone = client.get(&path).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["error"]["code"], "resource_missing");
    assert_eq!(
        client.ok(&format!("/v1/tax_ids/{tax_id}")).await["id"],
        tax_id.as_str()
    );
    // A customer without any has an empty list.
    let holders: HashSet<Value> = stripe
        .ids("payment_method")
        .iter()
        .map(|m| stripe.get("payment_method", m).unwrap()["customer"].clone())
        .collect();
    let lonely = stripe
        .ids("customer")
        .into_iter()
        .find(|c| !holders.contains(&json!(c)))
        .expect("a customer without payment methods");
    let empty = client
        .ok(&format!("/v1/customers/{lonely}/payment_methods"))
        .await;
    assert_eq!(empty["data"], json!([]));
    assert_eq!(empty["has_more"], false);
}

#[tokio::test]
async fn per_customer_objects_follow_their_customer() {
    let (stripe, client) = start(StripeData::generate_at(&Counts::everything(), NOW)).await;
    let customers = stripe.ids("customer");
    let (from, to) = (customers[0].clone(), customers[1].clone());
    let mut method = fixture("payment_method");
    method["id"] = json!("pm_moving");
    method["customer"] = json!(from);
    stripe.upsert("payment_method", method);
    let listed = |customer: &str| format!("/v1/customers/{customer}/payment_methods");
    assert!(ids(&client.walk(&listed(&from), 10).await).contains(&"pm_moving".to_owned()));
    stripe.update("payment_method", "pm_moving", |m| m["customer"] = json!(to));
    assert!(!ids(&client.walk(&listed(&from), 10).await).contains(&"pm_moving".to_owned()));
    assert_eq!(client.walk(&listed(&to), 10).await[0]["id"], "pm_moving");
    // Detached: still retrievable, in no customer's list.
    stripe.update("payment_method", "pm_moving", |m| {
        m["customer"] = Value::Null
    });
    assert!(client
        .walk(&listed(&to), 10)
        .await
        .iter()
        .all(|m| m["id"] != "pm_moving"));
    assert_eq!(
        client.ok("/v1/payment_methods/pm_moving").await["customer"],
        Value::Null
    );
}

#[tokio::test]
#[should_panic(expected = "names no live customer")]
async fn a_per_customer_object_needs_a_live_customer() {
    let (stripe, _client) = start(StripeData::generate_at(&Counts::everything(), NOW)).await;
    let mut tax_id = fixture("tax_id");
    tax_id["customer"] = json!("cus_nobody");
    stripe.upsert("tax_id", tax_id);
}

#[tokio::test]
async fn children_are_stored_as_given_and_listed_in_full() {
    let mut data = StripeData::generate_at(&Counts::everything(), NOW);
    let note = data.ids("credit_note")[0].clone();
    let lines: Vec<Value> = (0..25)
        .map(|i| {
            let mut line = fixture("credit_note_line_item");
            line["id"] = json!(format!("cnli_test{i:02}"));
            line
        })
        .collect();
    data.set_children("credit_note", &note, lines.clone());
    let (stripe, client) = start(data).await;
    let served = client.ok(&format!("/v1/credit_notes/{note}")).await;
    assert_eq!(served["lines"]["total_count"], 25);
    assert_eq!(served["lines"]["has_more"], true);
    assert_eq!(served["lines"]["data"].as_array().unwrap()[..], lines[..10]);
    let url = format!("/v1/credit_notes/{note}/lines");
    assert_eq!(served["lines"]["url"], url);
    let full = client.walk(&url, 100).await;
    assert_eq!(full, lines, "as given, without a credit_note field");
    let page = client
        .ok(&format!("{url}?limit=5&starting_after=cnli_test04"))
        .await;
    assert_eq!(ids(page["data"].as_array().unwrap())[0], "cnli_test05");
    assert_eq!(page["url"], url);
    assert_eq!(
        client
            .get(&format!("{url}?starting_after=cnli_nope"))
            .await
            .status,
        400
    );

    // An invoice line upserted alone names its invoice.
    let invoice = stripe.ids("invoice")[0].clone();
    let mut line = fixture("line_item");
    line["id"] = json!("il_added");
    line["invoice"] = json!(invoice);
    stripe.upsert("invoice_line_item", line.clone());
    let lines = client
        .walk(&format!("/v1/invoices/{invoice}/lines"), 100)
        .await;
    assert_eq!(lines.last(), Some(&line));
    assert!(stripe.delete("invoice", &invoice));
    assert_eq!(stripe.get("invoice_line_item", "il_added"), None);
    assert_eq!(
        client
            .get(&format!("/v1/invoices/{invoice}/lines"))
            .await
            .status,
        404
    );
}
