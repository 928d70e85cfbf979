//! The fake's test controls over real HTTP: auth, injected faults, counters, latency, live edits.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;
use supasaasy_testkit::fake_stripe::{Counts, FakeStripe, StripeData};
use support::{get, ids, Client};

async fn start() -> (FakeStripe, Client) {
    let stripe = FakeStripe::start(StripeData::generate(&Counts::default())).await;
    let client = Client::new(stripe.base_url(), stripe.api_key());
    (stripe, client)
}

#[tokio::test]
async fn requests_need_the_api_key() {
    let data = StripeData::generate(&Counts::default()).with_api_key("sk_test_other_key_1234");
    let stripe = FakeStripe::start(data).await;
    assert_eq!(stripe.api_key(), "sk_test_other_key_1234");
    let base = stripe.base_url();

    let missing = get(&base, "/v1/customers", None).await;
    assert_eq!(missing.status, 401);
    let body = missing.json();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("did not provide an API key"));

    let wrong = get(&base, "/v1/customers", Some("Bearer sk_test_fake")).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.json()["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid API Key"));

    assert_eq!(
        get(
            &base,
            "/v1/customers",
            Some("Bearer sk_test_other_key_1234")
        )
        .await
        .status,
        200
    );
    // Basic auth with the key as user name: base64("sk_test_other_key_1234:").
    let basic = "Basic c2tfdGVzdF9vdGhlcl9rZXlfMTIzNDo=";
    assert_eq!(get(&base, "/v1/customers", Some(basic)).await.status, 200);
    assert_eq!(StripeData::empty().api_key(), "sk_test_fake");
}

#[tokio::test]
async fn injected_failures_then_recovery_and_counters() {
    let (stripe, client) = start().await;
    stripe.fail_next(2, 429);
    for _ in 0..2 {
        let reply = client.get("/v1/customers").await;
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert_eq!(reply.json()["error"]["code"], "rate_limit");
    }
    assert_eq!(client.get("/v1/customers").await.status, 200);

    stripe.fail_next(1, 500);
    let reply = client.get("/v1/products").await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.header("retry-after"), None);
    assert_eq!(reply.json()["error"]["type"], "api_error");
    assert_eq!(client.get("/v1/products").await.status, 200);

    assert_eq!(stripe.requests(), 5);
    assert_eq!(stripe.requests_to("/v1/customers"), 3);
    assert_eq!(stripe.requests_to("/v1/products"), 2);
    assert_eq!(stripe.requests_to("/v1/"), 5);
    stripe.reset_requests();
    assert_eq!(stripe.requests(), 0);
    assert!(client
        .get("/v1/customers")
        .await
        .header("request-id")
        .is_some());
}

#[tokio::test]
async fn latency_delays_answers_without_serialising_them() {
    let (stripe, client) = start().await;
    stripe.set_latency(Duration::from_millis(300));
    let began = Instant::now();
    let client = std::sync::Arc::new(client);
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/v1/customers?limit=1").await.status })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "requests were served one by one: {took:?}"
    );
}

#[tokio::test]
async fn live_edits_show_in_lists_and_retrieves() {
    let (stripe, client) = start().await;
    let before = ids(&client.walk("/v1/customers", 100).await);
    let victim = before[3].clone();

    assert!(stripe.delete("customer", &victim));
    assert!(!stripe.delete("customer", &victim));
    let after = ids(&client.walk("/v1/customers", 100).await);
    assert_eq!(after.len(), before.len() - 1);
    assert!(!after.contains(&victim));
    let stub = client.ok(&format!("/v1/customers/{victim}")).await;
    assert_eq!(
        stub,
        json!({"id": victim, "object": "customer", "deleted": true})
    );
    // A client holding the deleted object as its cursor carries on where it was.
    let rest = client
        .ok(&format!("/v1/customers?limit=100&starting_after={victim}"))
        .await;
    assert_eq!(ids(rest["data"].as_array().unwrap()), before[4..].to_vec());

    // A new customer is the newest.
    let mut fresh = supasaasy_testkit::fake_stripe::fixture("customer");
    fresh["id"] = json!("cus_brandnew0001");
    fresh.as_object_mut().unwrap().remove("created");
    stripe.upsert("customer", fresh);
    assert_eq!(
        client.ok("/v1/customers?limit=1").await["data"][0]["id"],
        "cus_brandnew0001"
    );

    assert!(stripe.update("customer", &before[0], |c| c["email"] =
        json!("changed@example.com")));
    assert_eq!(
        client.ok(&format!("/v1/customers/{}", before[0])).await["email"],
        "changed@example.com"
    );
    assert!(!stripe.update("customer", "cus_missing", |_| {}));

    // Subscriptions: replacing items, deleting one item, deleting the subscription.
    let sub = stripe.ids("subscription")[0].clone();
    let item =
        |n: u32| json!({"id": format!("si_test{n}"), "object": "subscription_item", "created": 1});
    stripe.set_subscription_items(&sub, (0..12).map(item).collect());
    let embedded = client.ok(&format!("/v1/subscriptions/{sub}")).await["items"].clone();
    assert_eq!(embedded["total_count"], 12);
    assert_eq!(embedded["data"][0]["subscription"], sub.as_str());
    assert!(stripe.delete("subscription_item", "si_test0"));
    let listed = client
        .walk(&format!("/v1/subscription_items?subscription={sub}"), 100)
        .await;
    assert_eq!(listed.len(), 11);
    stripe.upsert(
        "subscription_item",
        json!({"id": "si_test99", "subscription": sub}),
    );
    assert_eq!(
        stripe.get("subscription", &sub).unwrap()["items"]["total_count"],
        12
    );
    assert!(stripe.delete("subscription", &sub));
    assert_eq!(
        client.get(&format!("/v1/subscriptions/{sub}")).await.status,
        404
    );
    assert!(!client
        .walk("/v1/subscriptions?status=all", 100)
        .await
        .iter()
        .any(|s| s["id"] == sub.as_str()));
    assert_eq!(stripe.get("subscription_item", "si_test5"), None);
}

#[tokio::test]
async fn serves_while_the_test_thread_blocks() {
    // A current-thread test blocked on synchronous I/O (a child process, say) must not starve the
    // fake: it runs on a thread of its own.
    let (stripe, _client) = start().await;
    let mut stream = std::net::TcpStream::connect(stripe.addr()).unwrap();
    let request = format!(
        "GET /v1/customers?limit=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\n\r\n",
        stripe.api_key()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let (stripe, _client) = start().await;
    let addr = stripe.addr();
    stripe.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn lists_can_refuse_the_created_filter_as_localstripe_does() {
    let stripe = FakeStripe::start(StripeData::generate(&Counts::everything())).await;
    let client = Client::new(stripe.base_url(), stripe.api_key());
    let customer = stripe.ids("customer")[0].clone();
    let invoice = stripe.ids("invoice")[0].clone();
    let filtered = [
        "/v1/customers?created%5Bgte%5D=1".to_owned(),
        "/v1/invoices?limit=3&created[lt]=2000000000".to_owned(),
        "/v1/subscriptions?status=all&created=5".to_owned(),
        "/v1/events?created[gt]=1".to_owned(),
        format!("/v1/customers/{customer}/tax_ids?created[gte]=1"),
        format!("/v1/invoices/{invoice}/lines?created[gte]=1"),
    ];
    assert_eq!(client.get(&filtered[0]).await.status, 200);
    stripe.refuse_created_filter(true);
    for path in &filtered {
        let refused = client.get(path).await;
        assert_eq!(refused.status, 400, "{path}");
        assert_eq!(
            refused.json(),
            json!({"error": {"type": "invalid_request_error", "message": "Unexpected created"}}),
            "{path}"
        );
    }
    // Without the filter, and for retrieves, nothing changes.
    assert_eq!(client.get("/v1/customers?limit=3").await.status, 200);
    assert_eq!(
        client
            .get(&format!("/v1/customers/{customer}"))
            .await
            .status,
        200
    );
    stripe.refuse_created_filter(false);
    assert_eq!(client.get(&filtered[1]).await.status, 200);
}
