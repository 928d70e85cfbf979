//! The fake Intercom's controls over real HTTP: the token, rate limits, injected faults,
//! counters, latency, webhook notifications and signatures, shutdown.

mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use supasaasy_testkit::fake_intercom::{
    intercom_signature, FakeIntercom, IntercomCounts, IntercomData, DEFAULT_RATE_LIMIT,
};
use support::intercom::Ic;
use support::{get, send};

async fn start() -> (FakeIntercom, Ic) {
    let intercom = FakeIntercom::start(IntercomData::generate(&IntercomCounts::default())).await;
    let client = Ic::of(&intercom);
    (intercom, client)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn header(reply: &support::Reply, name: &str) -> i64 {
    reply
        .header(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn requests_need_the_bearer_token() {
    let data = IntercomData::generate(&IntercomCounts::default()).with_token("dG9rOmFiYw==");
    let intercom = FakeIntercom::start(data).await;
    assert_eq!(intercom.token(), "dG9rOmFiYw==");
    let base = intercom.base_url();
    for auth in [
        None,
        Some("Bearer ic_test_fake"),
        Some("dG9rOmFiYw=="),
        Some("Basic dG9rOmFiYw=="),
    ] {
        let reply = get(&base, "/contacts", auth).await;
        assert_eq!(reply.status, 401, "{auth:?}");
        let body = reply.json();
        assert_eq!(body["type"], "error.list");
        assert_eq!(
            body["errors"],
            json!([{"code": "unauthorized", "message": "Access Token Invalid"}])
        );
        assert_eq!(body["request_id"].as_str().unwrap().len(), 36);
        assert_eq!(
            header(&reply, "x-ratelimit-remaining"),
            DEFAULT_RATE_LIMIT as i64
        );
    }
    assert_eq!(
        get(&base, "/contacts", Some("Bearer dG9rOmFiYw=="))
            .await
            .status,
        200
    );
    assert_eq!(IntercomData::empty().token(), "ic_test_fake");
    let search = send(&base, "POST", "/contacts/search", &[], Some(b"{}")).await;
    assert_eq!(search.status, 401);
}

#[tokio::test]
async fn every_answer_reports_the_rate_limit_and_a_spent_window_answers_429() {
    let (intercom, client) = start().await;
    let reply = client.get("/admins").await;
    assert_eq!(
        header(&reply, "x-ratelimit-limit"),
        DEFAULT_RATE_LIMIT as i64
    );
    assert_eq!(
        header(&reply, "x-ratelimit-remaining"),
        DEFAULT_RATE_LIMIT as i64 - 1
    );
    let reset = header(&reply, "x-ratelimit-reset");
    assert!(
        (unix_now() + 9..=unix_now() + 11).contains(&reset),
        "{reset}"
    );

    intercom.set_rate_limit(3, Duration::from_millis(1_500));
    let began = Instant::now();
    let mut resets = Vec::new();
    for remaining in [2, 1, 0] {
        let reply = client.get("/contacts?per_page=1").await;
        assert_eq!(reply.status, 200);
        assert_eq!(header(&reply, "x-ratelimit-limit"), 3);
        assert_eq!(header(&reply, "x-ratelimit-remaining"), remaining);
        resets.push(header(&reply, "x-ratelimit-reset"));
    }
    assert!(
        resets.windows(2).all(|w| w[0] == w[1]),
        "one window: {resets:?}"
    );
    for path in ["/contacts", "/admins", "/companies/scroll"] {
        let reply = client.get(path).await;
        assert_eq!(reply.status, 429, "{path}");
        assert_eq!(
            reply.json()["errors"],
            json!([{"code": "rate_limit_exceeded", "message": "Exceeded rate limit"}])
        );
        assert_eq!(header(&reply, "x-ratelimit-remaining"), 0);
        assert_eq!(header(&reply, "x-ratelimit-reset"), resets[0]);
    }
    let search = client.post("/contacts/search", &json!({"query": {}})).await;
    assert_eq!(search.status, 429);
    assert_eq!(intercom.rate_limited(), 4);
    // The scroll was refused before it started: none is open.
    assert_eq!(intercom.open_scroll(), None);

    // Still refused until the window ends, then a fresh window.
    while began.elapsed() < Duration::from_millis(1_400) {
        assert_eq!(client.get("/admins").await.status, 429);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reply = client.get("/admins").await;
    assert_eq!(reply.status, 200);
    assert_eq!(header(&reply, "x-ratelimit-remaining"), 2);
    assert!(header(&reply, "x-ratelimit-reset") >= resets[0]);

    // A test need not wait: the window can be ended at once.
    client.get("/admins").await;
    client.get("/admins").await;
    assert_eq!(client.get("/admins").await.status, 429);
    intercom.reset_rate_limit();
    assert_eq!(client.get("/admins").await.status, 200);
}

#[tokio::test]
async fn injected_failures_then_recovery_and_counters() {
    let (intercom, client) = start().await;
    intercom.fail_next(2, 503);
    for path in ["/contacts", "/companies/scroll"] {
        let reply = client.get(path).await;
        assert_eq!(reply.status, 503);
        let body = reply.json();
        assert_eq!(body["type"], "error.list");
        assert_eq!(body["errors"][0]["code"], "server_error");
        assert!(reply.header("x-ratelimit-reset").is_some());
    }
    assert_eq!(intercom.open_scroll(), None);
    assert_eq!(client.get("/contacts").await.status, 200);
    intercom.fail_next(1, 429);
    assert_eq!(client.get("/conversations").await.status, 429);
    assert_eq!(intercom.rate_limited(), 1);
    assert_eq!(client.get("/conversations").await.status, 200);

    assert_eq!(get(&client.base_url, "/admins", None).await.status, 401);
    assert_eq!(intercom.requests(), 6);
    assert_eq!(intercom.requests_to("/contacts"), 2);
    assert_eq!(intercom.requests_to("/conversations"), 2);
    assert_eq!(intercom.requests_to("/c"), 5);
    assert_eq!(intercom.requests_with_version("2.14"), 5);
    assert_eq!(intercom.requests_with_version(""), 1);
    intercom.reset_requests();
    assert_eq!((intercom.requests(), intercom.requests_to("/")), (0, 0));
    let reply = client.get("/admins").await;
    assert!(reply.header("x-request-id").is_some());
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
}

#[tokio::test]
async fn latency_delays_answers_without_serialising_them() {
    let (intercom, client) = start().await;
    intercom.set_latency(Duration::from_millis(300));
    let began = Instant::now();
    let client = std::sync::Arc::new(client);
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/contacts?per_page=1").await.status })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    let took = began.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "served one by one: {took:?}"
    );
}

#[tokio::test]
async fn notifications_are_shaped_and_signed_like_intercoms() {
    // HMAC-SHA1("key", "The quick brown fox jumps over the lazy dog"), the well-known vector.
    assert_eq!(
        intercom_signature("key", b"The quick brown fox jumps over the lazy dog"),
        "sha1=de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
    );
    let data = IntercomData::generate(&IntercomCounts::default()).with_client_secret("s3cret");
    let intercom = FakeIntercom::start(data).await;
    assert_eq!(intercom.client_secret(), "s3cret");
    intercom.set_clock(Some(1_750_000_000));
    let contact = intercom
        .get("contact", &intercom.ids("contact")[0])
        .unwrap();
    let a = intercom.notification("contact.user.created", contact.clone());
    let b = intercom.notification("contact.user.created", contact.clone());
    assert_ne!(a["id"], b["id"], "every notification is new");
    assert!(a["id"].as_str().unwrap().starts_with("notif_"));
    assert_eq!(
        a,
        json!({
            "type": "notification_event", "app_id": intercom.app_id(), "id": a["id"],
            "topic": "contact.user.created", "delivery_status": null, "delivery_attempts": 1,
            "delivered_at": 0, "first_sent_at": 1_750_000_000, "created_at": 1_750_000_000,
            "data": {"type": "notification_event_data", "item": contact}, "self": null,
        })
    );
    let body = serde_json::to_vec(&a).unwrap();
    assert_eq!(intercom.sign(&body), intercom_signature("s3cret", &body));
    assert_ne!(
        intercom.sign(&body),
        intercom_signature("ic_secret_fake", &body)
    );
    assert_eq!(
        FakeIntercom::start(IntercomData::empty())
            .await
            .client_secret(),
        "ic_secret_fake"
    );
}

#[tokio::test]
async fn serves_while_the_test_thread_blocks_and_stops_on_shutdown() {
    use std::io::{Read, Write};
    let (intercom, _client) = start().await;
    let mut stream = std::net::TcpStream::connect(intercom.addr()).unwrap();
    let request = format!(
        "GET /admins HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        intercom.token()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let addr = intercom.addr();
    intercom.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
