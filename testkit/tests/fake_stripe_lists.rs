//! The fake's list protocol over real HTTP: order, cursors, limits, filters, embedded items.

mod support;

use std::collections::HashSet;

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::{fixture, Counts, FakeStripe, StripeData};
use support::{ids, Client};

const NOW: i64 = 1_750_000_000;

async fn start(counts: Counts) -> (FakeStripe, Client) {
    let stripe = FakeStripe::start(StripeData::generate_at(&counts, NOW)).await;
    let client = Client::new(stripe.base_url(), stripe.api_key());
    (stripe, client)
}

fn created(o: &Value) -> i64 {
    o["created"].as_i64().unwrap()
}

#[tokio::test]
async fn starting_after_walks_every_object_once_newest_first() {
    let (stripe, client) = start(Counts {
        customers: 250,
        ..Counts::default()
    })
    .await;
    let all = client.walk("/v1/customers", 100).await;
    assert_eq!(all.len(), 250);
    assert_eq!(ids(&all), stripe.ids("customer"));
    assert_eq!(ids(&all).into_iter().collect::<HashSet<_>>().len(), 250);
    assert!(all.windows(2).all(|w| created(&w[0]) >= created(&w[1])));
    assert!(all.iter().all(|c| c["object"] == "customer"));
    assert_eq!(client.walk("/v1/customers", 7).await.len(), 250);

    // ending_before walks back towards the newest, each page still newest first.
    let mut back: Vec<Value> = Vec::new();
    let mut cursor = all.last().unwrap()["id"].as_str().unwrap().to_owned();
    back.insert(0, all.last().unwrap().clone());
    loop {
        let page = client
            .ok(&format!("/v1/customers?limit=30&ending_before={cursor}"))
            .await;
        let data = page["data"].as_array().unwrap().clone();
        assert!(data.windows(2).all(|w| created(&w[0]) >= created(&w[1])));
        cursor = data[0]["id"].as_str().unwrap().to_owned();
        back.splice(0..0, data);
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(ids(&back), ids(&all));
}

#[tokio::test]
async fn ties_on_created_are_ordered_and_paginated_deterministically() {
    let mut data = StripeData::empty();
    for i in 0..25 {
        data.upsert(
            "product",
            json!({"id": format!("prod_tie{i:02}"), "object": "product", "created": 1000 + i / 10}),
        );
    }
    let stripe = FakeStripe::start(data).await;
    let client = Client::new(stripe.base_url(), stripe.api_key());
    let walked = ids(&client.walk("/v1/products", 3).await);
    let expected: Vec<String> = (0..25).rev().map(|i| format!("prod_tie{i:02}")).collect();
    assert_eq!(walked, expected);
    // Replacing an object keeps its place among its ties.
    stripe.update("product", "prod_tie05", |p| p["name"] = json!("renamed"));
    assert_eq!(ids(&client.walk("/v1/products", 4).await), expected);
}

#[tokio::test]
async fn limit_defaults_to_ten_and_is_bounded() {
    let (_stripe, client) = start(Counts::default()).await;
    let page = client.ok("/v1/customers").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 10);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["url"], "/v1/customers");
    assert_eq!(
        client.ok("/v1/customers?limit=100").await["data"]
            .as_array()
            .unwrap()
            .len(),
        50
    );
    assert_eq!(
        client.ok("/v1/customers?limit=1").await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    for bad in ["0", "101", "-1", "ten"] {
        let reply = client.get(&format!("/v1/customers?limit={bad}")).await;
        assert_eq!(reply.status, 400, "limit={bad}");
        let body = reply.json();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "limit");
    }
    let reply = client.get("/v1/customers?starting_after=cus_nope").await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["error"]["message"],
        "No such customer: 'cus_nope'"
    );
    assert_eq!(client.get("/v1/customers?bogus=1").await.status, 400);
    assert_eq!(client.get("/v1/customers?status=all").await.status, 400);
}

#[tokio::test]
async fn created_filters_bound_the_window() {
    let (stripe, client) = start(Counts {
        customers: 120,
        ..Counts::default()
    })
    .await;
    let everything = client.walk("/v1/customers", 100).await;
    let times: Vec<i64> = everything.iter().map(created).collect();
    let (lo, hi) = (times[90], times[20]);
    let expect = |f: &dyn Fn(i64) -> bool| -> Vec<String> {
        everything
            .iter()
            .filter(|c| f(created(c)))
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let cases: Vec<(String, Vec<String>)> = vec![
        (format!("created%5Bgte%5D={lo}"), expect(&|t| t >= lo)),
        (format!("created%5Bgt%5D={lo}"), expect(&|t| t > lo)),
        (format!("created[lte]={hi}"), expect(&|t| t <= hi)),
        (format!("created[lt]={hi}"), expect(&|t| t < hi)),
        (
            format!("created[gte]={lo}&created%5Blt%5D={hi}"),
            expect(&|t| t >= lo && t < hi),
        ),
        (format!("created={lo}"), expect(&|t| t == lo)),
        (format!("created[gt]={hi}&created[lt]={lo}"), vec![]),
    ];
    for (query, expected) in cases {
        let got = ids(&client.walk(&format!("/v1/customers?{query}"), 9).await);
        assert_eq!(got, expected, "{query}");
    }
    // A cursor and a window together.
    let cursor = &everything[30]["id"].as_str().unwrap();
    let got = ids(&client
        .walk(
            &format!("/v1/customers?created[gte]={lo}&starting_after={cursor}"),
            100,
        )
        .await);
    assert_eq!(got, ids(&everything[31..=90]));
    assert_eq!(
        client.get("/v1/customers?created[gte]=soon").await.status,
        400
    );
    drop(stripe);
}

#[tokio::test]
async fn subscriptions_hide_canceled_unless_asked() {
    let (stripe, client) = start(Counts {
        customers: 40,
        subscriptions: 60,
        canceled_every: 3,
        ..Counts::default()
    })
    .await;
    let all = client.walk("/v1/subscriptions?status=all", 100).await;
    assert_eq!(all.len(), 60);
    assert_eq!(ids(&all), stripe.ids("subscription"));
    let canceled = all.iter().filter(|s| s["status"] == "canceled").count();
    assert_eq!(canceled, 20);
    let default = client.walk("/v1/subscriptions", 100).await;
    assert_eq!(default.len(), 40);
    assert!(default.iter().all(|s| s["status"] != "canceled"));
    let only = client.walk("/v1/subscriptions?status=canceled", 100).await;
    assert_eq!(only.len(), 20);
    let ended = client.walk("/v1/subscriptions?status=ended", 100).await;
    assert_eq!(ended.len(), 20);
    let statuses: HashSet<_> = all.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert!(
        statuses.contains("active") && statuses.contains("trialing"),
        "{statuses:?}"
    );
    for s in &all {
        assert!(stripe
            .get("customer", s["customer"].as_str().unwrap())
            .is_some());
    }
    let customer = all[0]["customer"].as_str().unwrap();
    let theirs = client
        .walk(
            &format!("/v1/subscriptions?status=all&customer={customer}"),
            100,
        )
        .await;
    assert!(!theirs.is_empty() && theirs.iter().all(|s| s["customer"] == customer));
    assert_eq!(
        client.get("/v1/subscriptions?status=nope").await.status,
        400
    );
}

#[tokio::test]
async fn subscription_items_are_truncated_and_listed_in_full() {
    let (stripe, client) = start(Counts {
        customers: 5,
        products: 4,
        prices_per_product: 5,
        subscriptions: 3,
        items_per_subscription: 15,
        canceled_every: 0,
        ..Counts::default()
    })
    .await;
    let sub = client.ok("/v1/subscriptions?limit=1").await["data"][0].clone();
    let id = sub["id"].as_str().unwrap();
    let items = &sub["items"];
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"].as_array().unwrap().len(), 10);
    assert_eq!(items["has_more"], true);
    assert_eq!(items["total_count"], 15);
    assert_eq!(
        items["url"],
        format!("/v1/subscription_items?subscription={id}")
    );

    let full = client
        .ok(&format!(
            "/v1/subscription_items?subscription={id}&limit=100"
        ))
        .await;
    let full = full["data"].as_array().unwrap().clone();
    assert_eq!(full.len(), 15);
    assert_eq!(&full[..10], items["data"].as_array().unwrap().as_slice());
    let walked = client
        .walk(&format!("/v1/subscription_items?subscription={id}"), 4)
        .await;
    assert_eq!(walked, full);
    let prices: HashSet<_> = full
        .iter()
        .map(|i| i["price"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(prices.len(), 15, "one item per price");
    for item in &full {
        assert_eq!(item["subscription"], id);
        assert_eq!(item["plan"]["id"], item["price"]["id"]);
        assert!(stripe
            .get("price", item["price"]["id"].as_str().unwrap())
            .is_some());
        assert!(item["current_period_start"].as_i64() < item["current_period_end"].as_i64());
    }
    let last = full[14]["id"].as_str().unwrap();
    let before = client
        .ok(&format!(
            "/v1/subscription_items?subscription={id}&ending_before={last}&limit=3"
        ))
        .await;
    assert_eq!(before["data"].as_array().unwrap().as_slice(), &full[11..14]);
    assert_eq!(before["has_more"], true);

    assert_eq!(client.get("/v1/subscription_items").await.status, 400);
    assert_eq!(
        client
            .get("/v1/subscription_items?subscription=sub_nope")
            .await
            .status,
        404
    );
    let retrieved = client
        .ok(&format!(
            "/v1/subscription_items/{}",
            full[3]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(retrieved, full[3]);
}

#[tokio::test]
async fn retrieve_and_fixture_shapes() {
    let (stripe, client) = start(Counts::default()).await;
    for (resource, path) in [
        ("customer", "customers"),
        ("product", "products"),
        ("price", "prices"),
        ("plan", "plans"),
        ("subscription", "subscriptions"),
    ] {
        let id = stripe.ids(resource)[0].clone();
        let got = client.ok(&format!("/v1/{path}/{id}")).await;
        assert_eq!(got["id"], id.as_str());
        assert_eq!(got["object"], resource);
        assert_eq!(Some(got), stripe.get(resource, &id));
        let missing = client.get(&format!("/v1/{path}/nope_123")).await;
        assert_eq!(missing.status, 404);
        assert_eq!(missing.json()["error"]["code"], "resource_missing");
    }
    for unserved in ["/v1/transfers", "/v1/discounts", "/v1/tax_ids"] {
        assert_eq!(client.get(unserved).await.status, 404, "{unserved}");
    }
    let price = client.ok("/v1/prices?limit=1").await["data"][0].clone();
    let plan = client
        .ok(&format!("/v1/plans/{}", price["id"].as_str().unwrap()))
        .await;
    assert_eq!(plan["product"], price["product"]);
    assert_eq!(plan["amount"], price["unit_amount"]);
    let product = price["product"].as_str().unwrap();
    let of_product = client
        .walk(&format!("/v1/prices?product={product}"), 100)
        .await;
    assert!(of_product.iter().all(|p| p["product"] == product));
    assert_eq!(fixture("customer")["object"], "customer");
}
