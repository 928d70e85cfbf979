//! The fake as a Stripe Connect platform, over real HTTP: `Stripe-Account` reaches a connected
//! account's own objects and events, `/v1/account` and `/v1/accounts`, the 403 for accounts the
//! platform does not reach, and the Connect events on the platform's log.

mod support;

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::{fixture, Counts, FakeStripe, StripeData, DEFAULT_ACCOUNT_ID};
use support::{ids, send, Client, Reply};

const KEY: &str = "sk_test_abcdefgh1234";

/// A client of one fake that names an account in `Stripe-Account` (or none).
struct As<'a> {
    client: &'a Client,
    account: Option<&'a str>,
}

impl As<'_> {
    async fn get(&self, path: &str) -> Reply {
        let auth = format!("Bearer {}", self.client.key);
        let mut headers = vec![("Authorization", auth.as_str())];
        headers.extend(self.account.map(|a| ("Stripe-Account", a)));
        send(&self.client.base_url, "GET", path, &headers, None).await
    }

    async fn ok(&self, path: &str) -> Value {
        let reply = self.get(path).await;
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        assert_eq!(reply.status, 200, "{path} as {:?}: {body}", self.account);
        reply.json()
    }

    /// Every object of a list, `limit` at a time.
    async fn walk(&self, path: &str, limit: usize) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut all: Vec<Value> = Vec::new();
        loop {
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(last) = all.last() {
                url.push_str(&format!("&starting_after={}", last["id"].as_str().unwrap()));
            }
            let page = self.ok(&url).await;
            all.extend(page["data"].as_array().unwrap().iter().cloned());
            if page["has_more"] == false {
                return all;
            }
        }
    }
}

fn client(stripe: &FakeStripe) -> Client {
    Client::new(stripe.base_url(), stripe.api_key())
}

fn as_account<'a>(client: &'a Client, account: &'a str) -> As<'a> {
    As {
        client,
        account: Some(account),
    }
}

fn as_platform(client: &Client) -> As<'_> {
    As {
        client,
        account: None,
    }
}

fn coupon(id: &str, amount_off: i64) -> Value {
    json!({"id": id, "object": "coupon", "amount_off": amount_off, "currency": "usd",
           "duration": "once", "percent_off": null, "valid": true})
}

/// The message Stripe refuses an account the key cannot reach with.
fn no_access(account: &str) -> String {
    format!(
        "The provided key 'sk_test_********1234' does not have access to account '{account}' (or \
         that account does not exist). Application access may have been revoked."
    )
}

#[tokio::test]
async fn the_same_id_is_served_per_account() {
    let counts = Counts::everything();
    let data = StripeData::generate(&counts)
        .with_api_key(KEY)
        .with_connected_account(
            "acct_1AAAAAAAAAAAAAAA",
            StripeData::generate_seeded(&counts, 1),
        )
        .with_connected_account(
            "acct_1BBBBBBBBBBBBBBB",
            StripeData::generate_seeded(&counts, 2),
        );
    let stripe = FakeStripe::start(data).await;
    let client = client(&stripe);
    let (a_id, b_id) = ("acct_1AAAAAAAAAAAAAAA", "acct_1BBBBBBBBBBBBBBB");
    let (a, b, platform) = (
        as_account(&client, a_id),
        as_account(&client, b_id),
        as_platform(&client),
    );
    stripe
        .in_account(a_id)
        .upsert("coupon", coupon("SUMMER", 500));
    stripe
        .in_account(b_id)
        .upsert("coupon", coupon("SUMMER", 1000));

    assert_eq!(a.ok("/v1/coupons/SUMMER").await["amount_off"], 500);
    assert_eq!(b.ok("/v1/coupons/SUMMER").await["amount_off"], 1000);
    assert_eq!(platform.get("/v1/coupons/SUMMER").await.status, 404);
    assert_eq!(
        stripe.in_account(a_id).get("coupon", "SUMMER").unwrap()["amount_off"],
        500
    );
    assert_eq!(stripe.get("coupon", "SUMMER"), None);
    let a_coupons = ids(&a.walk("/v1/coupons", 100).await);
    assert_eq!(a_coupons, stripe.in_account(a_id).ids("coupon"));
    assert_eq!(a_coupons[0], "SUMMER");

    // Each account lists its own generated objects, and they share no id.
    let a_customers = ids(&a.walk("/v1/customers", 5).await);
    let b_customers = ids(&b.walk("/v1/customers", 5).await);
    assert_eq!(a_customers, stripe.in_account(a_id).ids("customer"));
    assert_eq!(b_customers, stripe.in_account(b_id).ids("customer"));
    assert_eq!(
        ids(&platform.walk("/v1/customers", 5).await),
        stripe.ids("customer")
    );
    assert!(a_customers.iter().all(|id| !b_customers.contains(id)));
    let a_customer = &a_customers[0];
    assert_eq!(
        a.ok(&format!("/v1/customers/{a_customer}")).await["id"],
        *a_customer
    );
    assert_eq!(
        b.get(&format!("/v1/customers/{a_customer}")).await.status,
        404
    );

    // Child lists and per-customer lists come from the account too.
    let subscription = &stripe.in_account(a_id).ids("subscription")[0];
    let items = a
        .ok(&format!(
            "/v1/subscription_items?subscription={subscription}"
        ))
        .await;
    assert!(!items["data"].as_array().unwrap().is_empty());
    let path = format!("/v1/subscription_items?subscription={subscription}");
    assert_eq!(b.get(&path).await.status, 404);
    let invoice = &stripe.in_account(b_id).ids("invoice")[0];
    let lines = b.ok(&format!("/v1/invoices/{invoice}/lines")).await;
    assert!(!lines["data"].as_array().unwrap().is_empty());
    let tax_id = stripe
        .in_account(a_id)
        .get("tax_id", &stripe.in_account(a_id).ids("tax_id")[0]);
    let holder = tax_id.unwrap()["customer"].as_str().unwrap().to_owned();
    let theirs = a.ok(&format!("/v1/customers/{holder}/tax_ids")).await;
    assert_eq!(theirs["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        b.get(&format!("/v1/customers/{holder}/tax_ids"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn accounts_are_listed_newest_first_with_stripes_protocol() {
    let mut data = StripeData::empty();
    let added: Vec<String> = (0..7).map(|i| format!("acct_1Connected{i:06}")).collect();
    for id in &added {
        data = data.with_connected_account(id, StripeData::empty());
    }
    let stripe = FakeStripe::start(data).await;
    let client = client(&stripe);
    let platform = as_platform(&client);

    let listed = platform.walk("/v1/accounts", 3).await;
    let newest_first: Vec<String> = added.iter().rev().cloned().collect();
    assert_eq!(ids(&listed), newest_first);
    assert_eq!(stripe.account_ids(), newest_first);
    let created: Vec<i64> = listed
        .iter()
        .map(|a| a["created"].as_i64().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] > w[1]), "{created:?}");
    assert!(created[0] < stripe.now());
    for account in &listed {
        assert_eq!(account["object"], "account");
        for key in fixture("account").as_object().unwrap().keys() {
            assert!(account.get(key).is_some(), "an account lacks {key}");
        }
    }

    let page = platform.ok("/v1/accounts?limit=2").await;
    assert_eq!(ids(page["data"].as_array().unwrap()), newest_first[..2]);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["url"], "/v1/accounts");
    let before = platform
        .ok(&format!(
            "/v1/accounts?ending_before={}&limit=2",
            newest_first[4]
        ))
        .await;
    assert_eq!(ids(before["data"].as_array().unwrap()), newest_first[2..4]);
    assert_eq!(before["has_more"], true);
    let since = platform
        .ok(&format!("/v1/accounts?created[gte]={}", created[2]))
        .await;
    assert_eq!(ids(since["data"].as_array().unwrap()), newest_first[..3]);
    let until = platform
        .ok(&format!("/v1/accounts?created[lt]={}", created[5]))
        .await;
    assert_eq!(ids(until["data"].as_array().unwrap()), newest_first[6..]);
    let bad_cursor = platform.get("/v1/accounts?starting_after=acct_nope").await;
    assert_eq!(bad_cursor.status, 400);
    assert_eq!(platform.get("/v1/accounts?limit=101").await.status, 400);
    assert_eq!(platform.get("/v1/accounts?color=blue").await.status, 400);

    let one = platform.ok(&format!("/v1/accounts/{}", added[3])).await;
    assert_eq!(one, listed[3]);

    // One connected while serving comes first, created now.
    stripe.connect("acct_1Latecomer000000", StripeData::empty());
    let first = platform.ok("/v1/accounts?limit=1").await;
    assert_eq!(first["data"][0]["id"], "acct_1Latecomer000000");
    assert!(first["data"][0]["created"].as_i64().unwrap() > created[0]);

    // Only the platform lists accounts.
    let refused = as_account(&client, &added[0]).get("/v1/accounts").await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.json()["error"]["message"],
        "You cannot access the connected accounts of your Platform's connected accounts."
    );
    let path = format!("/v1/accounts/{}", added[1]);
    assert_eq!(as_account(&client, &added[0]).get(&path).await.status, 403);
}

#[tokio::test]
async fn account_answers_the_account_reached() {
    let data = StripeData::empty()
        .with_account_id("acct_1PlatformXXXXXXX")
        .with_connected_account("acct_1ConnectedXXXXXX", StripeData::empty());
    assert_eq!(StripeData::empty().account_id(), DEFAULT_ACCOUNT_ID);
    let stripe = FakeStripe::start(data).await;
    assert_eq!(stripe.platform_account_id(), "acct_1PlatformXXXXXXX");
    let client = client(&stripe);

    let own = as_platform(&client).ok("/v1/account").await;
    assert_eq!(own["id"], "acct_1PlatformXXXXXXX");
    assert_eq!(own["object"], "account");
    let theirs = as_account(&client, "acct_1ConnectedXXXXXX")
        .ok("/v1/account")
        .await;
    assert_eq!(theirs["id"], "acct_1ConnectedXXXXXX");
    assert_eq!(
        theirs["external_accounts"]["url"],
        "/v1/accounts/acct_1ConnectedXXXXXX/external_accounts"
    );
    assert_eq!(
        theirs,
        as_platform(&client)
            .ok("/v1/accounts/acct_1ConnectedXXXXXX")
            .await
    );
    // Naming the platform itself is the platform.
    let named = as_account(&client, "acct_1PlatformXXXXXXX");
    assert_eq!(named.ok("/v1/account").await, own);
    assert_eq!(
        named.ok("/v1/accounts").await["data"][0]["id"],
        "acct_1ConnectedXXXXXX"
    );
}

#[tokio::test]
async fn unknown_and_disconnected_accounts_answer_403() {
    let mut connected = StripeData::empty();
    connected.upsert("coupon", coupon("SUMMER", 500));
    let data = StripeData::empty()
        .with_api_key(KEY)
        .with_connected_account("acct_1Leaving00000000", connected);
    let stripe = FakeStripe::start(data).await;
    let client = client(&stripe);

    let unknown = as_account(&client, "acct_1Stranger0000000");
    for path in [
        "/v1/customers",
        "/v1/account",
        "/v1/events",
        "/v1/coupons/SUMMER",
    ] {
        let reply = unknown.get(path).await;
        assert_eq!(reply.status, 403, "{path}");
        let want = json!({"error": {"type": "invalid_request_error", "code": "account_invalid",
                                    "message": no_access("acct_1Stranger0000000")}});
        assert_eq!(reply.json(), want, "{path}");
    }
    // The key is checked first.
    let wrong_key = Client::new(stripe.base_url(), "sk_test_wrong");
    let reply = as_account(&wrong_key, "acct_1Stranger0000000")
        .get("/v1/customers")
        .await;
    assert_eq!(reply.status, 401);
    let stranger = as_platform(&client)
        .get("/v1/accounts/acct_1Stranger0000000")
        .await;
    assert_eq!(stranger.status, 403);

    let leaving = as_account(&client, "acct_1Leaving00000000");
    assert_eq!(leaving.ok("/v1/coupons/SUMMER").await["amount_off"], 500);
    assert!(stripe.disconnect("acct_1Leaving00000000"));
    assert!(!stripe.disconnect("acct_1Leaving00000000"));
    let reply = leaving.get("/v1/coupons/SUMMER").await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.json()["error"]["message"],
        no_access("acct_1Leaving00000000")
    );
    assert_eq!(reply.json()["error"]["code"], "account_invalid");
    assert!(stripe.account_ids().is_empty());
    let listed = as_platform(&client).ok("/v1/accounts").await;
    assert_eq!(listed["data"], json!([]));
    // Its id still works as a cursor, and its handle still reads its objects.
    let after = as_platform(&client)
        .ok("/v1/accounts?starting_after=acct_1Leaving00000000")
        .await;
    assert_eq!(after["data"], json!([]));
    let handle = stripe.in_account("acct_1Leaving00000000");
    assert_eq!(handle.count("coupon"), 1);

    // Connected again, with other data, it is served again under the same account object.
    stripe.connect("acct_1Leaving00000000", StripeData::empty());
    assert_eq!(leaving.get("/v1/coupons/SUMMER").await.status, 404);
    assert_eq!(
        leaving.ok("/v1/account").await["id"],
        "acct_1Leaving00000000"
    );
}

#[tokio::test]
async fn connected_events_carry_the_account_and_stay_in_it() {
    let data = StripeData::empty()
        .with_connected_account("acct_1AAAAAAAAAAAAAAA", StripeData::empty())
        .with_connected_account("acct_1BBBBBBBBBBBBBBB", StripeData::empty());
    let stripe = FakeStripe::start(data).await;
    let client = client(&stripe);
    let a = stripe.in_account("acct_1AAAAAAAAAAAAAAA");
    assert_eq!(a.id(), "acct_1AAAAAAAAAAAAAAA");

    a.upsert("coupon", coupon("SUMMER", 500));
    assert!(a.update("coupon", "SUMMER", |c| c["amount_off"] = json!(600)));
    let pushed = a.push_event(json!({"type": "coupon.deleted", "object": "event",
                                     "data": {"object": coupon("WINTER", 1)}}));
    stripe.upsert("coupon", coupon("SUMMER", 100));

    let theirs = a.events();
    let types: Vec<&str> = theirs.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["coupon.created", "coupon.updated", "coupon.deleted"]
    );
    assert!(theirs
        .iter()
        .all(|e| e["account"] == "acct_1AAAAAAAAAAAAAAA"));
    assert_eq!(theirs[1]["data"]["previous_attributes"]["amount_off"], 500);
    assert_eq!(a.last_event().unwrap()["id"], pushed);
    assert_eq!(
        a.event(&pushed).unwrap()["account"],
        "acct_1AAAAAAAAAAAAAAA"
    );
    let platform_events = stripe.events();
    assert_eq!(platform_events.len(), 1);
    assert_eq!(platform_events[0].get("account"), None);
    assert_eq!(platform_events[0]["data"]["object"]["amount_off"], 100);

    let listed = as_account(&client, "acct_1AAAAAAAAAAAAAAA")
        .ok("/v1/events")
        .await;
    let listed_ids = ids(listed["data"].as_array().unwrap());
    let mut want = ids(&theirs);
    want.reverse();
    assert_eq!(listed_ids, want);
    let first = &want[2];
    let one = as_account(&client, "acct_1AAAAAAAAAAAAAAA")
        .ok(&format!("/v1/events/{first}"))
        .await;
    assert_eq!(one["account"], "acct_1AAAAAAAAAAAAAAA");
    let b = as_account(&client, "acct_1BBBBBBBBBBBBBBB");
    assert_eq!(b.ok("/v1/events").await["data"], json!([]));
    assert_eq!(b.get(&format!("/v1/events/{first}")).await.status, 404);
    let platform = as_platform(&client);
    let on_platform = ids(platform.ok("/v1/events").await["data"].as_array().unwrap());
    assert_eq!(on_platform, ids(&platform_events));
    assert_eq!(
        platform.get(&format!("/v1/events/{first}")).await.status,
        404
    );
}

#[tokio::test]
async fn deauthorize_and_account_updates_go_to_the_platforms_log() {
    let data = StripeData::empty()
        .with_connected_account("acct_1Revoking0000000", StripeData::empty())
        .with_connected_account("acct_1Updating0000000", StripeData::empty());
    let stripe = FakeStripe::start(data).await;
    let client = client(&stripe);

    let event = stripe.deauthorize("acct_1Revoking0000000");
    assert_eq!(event["type"], "account.application.deauthorized");
    assert_eq!(event["account"], "acct_1Revoking0000000");
    assert_eq!(event["data"]["object"], fixture("application"));
    assert_eq!(stripe.last_event().unwrap(), event);
    let revoked = as_account(&client, "acct_1Revoking0000000");
    assert_eq!(revoked.get("/v1/customers").await.status, 403);
    assert_eq!(stripe.account_ids(), ["acct_1Updating0000000"]);
    assert!(stripe
        .in_account("acct_1Revoking0000000")
        .events()
        .is_empty());

    let old_email = as_platform(&client)
        .ok("/v1/accounts/acct_1Updating0000000")
        .await["email"]
        .clone();
    stripe.update_account("acct_1Updating0000000", |a| {
        a["email"] = json!("owner@example.com");
        a["charges_enabled"] = json!(true);
    });
    let updated = stripe.last_event().unwrap();
    assert_eq!(updated["type"], "account.updated");
    assert_eq!(updated["account"], "acct_1Updating0000000");
    assert_eq!(updated["data"]["object"]["email"], "owner@example.com");
    assert_eq!(
        updated["data"]["previous_attributes"],
        json!({"email": old_email, "charges_enabled": false})
    );
    let served = as_platform(&client)
        .ok("/v1/accounts/acct_1Updating0000000")
        .await;
    assert_eq!(served, updated["data"]["object"]);
    let own = as_account(&client, "acct_1Updating0000000")
        .ok("/v1/account")
        .await;
    assert_eq!(own["email"], "owner@example.com");

    let listed = as_platform(&client).ok("/v1/events").await;
    let types: Vec<&str> = (listed["data"].as_array().unwrap().iter())
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["account.updated", "account.application.deauthorized"]
    );
    let theirs = as_account(&client, "acct_1Updating0000000")
        .ok("/v1/events")
        .await;
    assert_eq!(theirs["data"], json!([]));
}

#[tokio::test]
async fn requests_are_counted_per_account() {
    let data = StripeData::empty()
        .with_connected_account("acct_1AAAAAAAAAAAAAAA", StripeData::empty())
        .with_connected_account("acct_1BBBBBBBBBBBBBBB", StripeData::empty());
    let stripe = FakeStripe::start(data).await;
    let client = client(&stripe);
    let a = as_account(&client, "acct_1AAAAAAAAAAAAAAA");
    for path in ["/v1/customers", "/v1/events", "/v1/account"] {
        a.ok(path).await;
    }
    as_account(&client, "acct_1BBBBBBBBBBBBBBB")
        .ok("/v1/customers")
        .await;
    let stranger = as_account(&client, "acct_1Stranger0000000");
    assert_eq!(stranger.get("/v1/customers").await.status, 403);
    as_platform(&client).ok("/v1/customers").await;

    assert_eq!(stripe.requests_for_account("acct_1AAAAAAAAAAAAAAA"), 3);
    assert_eq!(stripe.requests_for_account("acct_1BBBBBBBBBBBBBBB"), 1);
    assert_eq!(stripe.requests_for_account("acct_1Stranger0000000"), 1);
    assert_eq!(stripe.requests_for_account(stripe.platform_account_id()), 0);
    assert_eq!(stripe.requests(), 6);
    assert_eq!(stripe.requests_to("/v1/customers"), 4);
    stripe.reset_requests();
    assert_eq!(stripe.requests_for_account("acct_1AAAAAAAAAAAAAAA"), 0);
}
