//! What an unauthenticated webhook request can cost the daemon: what can be refused without its
//! body is refused before the body is read; the bodies held at once share a budget; a refused
//! request stores no body, one to no app no row, and past a rate refusals are only counted; the
//! last accepted webhook is read without walking past refusals. The waits here only detect a
//! hang.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use supasaasy_testkit::fake_intercom::IntercomData;
use supasaasy_testkit::fake_stripe::StripeData;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{sign_now, spawn_app, Setup, TestApp};
use crate::metrics::{parse, scrape, sum};

/// Long enough that only a hang reaches it.
const HANG: Duration = Duration::from_secs(60);

fn addr(app: &TestApp) -> SocketAddr {
    app.base.trim_start_matches("http://").parse().unwrap()
}

/// A signature header that reads well and is on time, whose MAC only the body can refuse.
fn well_formed_signature() -> String {
    let now = chrono::Utc::now().timestamp();
    format!("t={now},v1={}", "0".repeat(64))
}

/// Sends the head of `POST path` with `headers` (each `Name: value\r\n`), then nothing.
async fn head_only(to: SocketAddr, path: &str, headers: &str) -> TcpStream {
    let mut stream = TcpStream::connect(to).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// The status line and the rest of the first answer read from `stream`.
async fn answer(stream: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    tokio::time::timeout(HANG, async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.unwrap_or(0);
            raw.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&raw);
            let complete = text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
                !head.starts_with("HTTP/1.1 100") && body.ends_with('}')
            });
            if n == 0 || complete || text.starts_with("HTTP/1.1 100") {
                return;
            }
        }
    })
    .await
    .expect("an answer");
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test]
async fn what_needs_no_body_is_refused_before_the_body_is_read() {
    // A body that never comes would be answered 408 after 5 s; these are answered at once.
    let app = spawn_app(Setup {
        workers: false,
        server_toml: "read_timeout_seconds = 5\nmax_body_bytes = 16384\n".into(),
        intercom: vec![("intercom_test".into(), IntercomData::empty())],
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    let to = addr(&app);
    let now = chrono::Utc::now().timestamp();
    let zeros = "0".repeat(64);
    let length = "Content-Length: 1000\r\n";
    let cases = [
        (
            "/webhook/stripe_test",
            String::new(),
            401,
            "missing Stripe-Signature",
        ),
        (
            "/webhook/stripe_test",
            "Stripe-Signature: t=abc,v1=00\r\n".into(),
            401,
            "unreadable timestamp",
        ),
        (
            "/webhook/stripe_test",
            format!("Stripe-Signature: t={now}\r\n"),
            401,
            "no v1",
        ),
        (
            "/webhook/stripe_test",
            format!("Stripe-Signature: t={},v1={zeros}\r\n", now - 301),
            401,
            "too old",
        ),
        (
            "/webhook/stripe_test",
            format!("Stripe-Signature: t={},v1={zeros}\r\n", now + 301),
            401,
            "in the future",
        ),
        (
            "/webhook/intercom_test",
            String::new(),
            401,
            "missing X-Hub-Signature",
        ),
        (
            "/webhook/intercom_test",
            "X-Hub-Signature: sha1=zz\r\n".into(),
            401,
            "unreadable X-Hub-Signature",
        ),
        (
            "/webhook/nope",
            format!("Stripe-Signature: t={now},v1={zeros}\r\n"),
            404,
            "unknown app",
        ),
        (
            "/webhook/stripe_test/connect",
            format!("Stripe-Signature: t={now},v1={zeros}\r\n"),
            404,
            "no Stripe Connect",
        ),
    ];
    for (path, headers, status, reason) in cases {
        let mut stream = head_only(to, path, &format!("{length}{headers}")).await;
        let got = answer(&mut stream).await;
        assert!(
            got.starts_with(&format!("HTTP/1.1 {status} ")),
            "{path} {headers:?}: {got}"
        );
        assert!(got.contains(reason), "{path} {headers:?}: {got}");
    }
    // A length over the limit, declared: 413 before a byte is read.
    let signed = format!(
        "Stripe-Signature: {}\r\nContent-Length: 16385\r\n",
        well_formed_signature()
    );
    let mut stream = head_only(to, "/webhook/stripe_test", &signed).await;
    let got = answer(&mut stream).await;
    assert!(got.starts_with("HTTP/1.1 413 "), "{got}");

    // A header that could verify: the body is waited for, and its absence is a 408.
    let signed = format!("Stripe-Signature: {}\r\n{length}", well_formed_signature());
    let mut stream = head_only(to, "/webhook/stripe_test", &signed).await;
    let got = answer(&mut stream).await;
    assert!(got.starts_with("HTTP/1.1 408 "), "{got}");
    app.stop().await;
}

#[tokio::test]
async fn webhook_bodies_share_a_budget_and_past_it_a_delivery_is_told_to_retry() {
    // Room for two of the largest bodies at once.
    let app = spawn_app(Setup {
        workers: false,
        server_toml: "max_body_bytes = 16384\nwebhook_body_budget_bytes = 32768\n\
                      read_timeout_seconds = 600\n"
            .into(),
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    let to = addr(&app);
    // Two slow deliveries hold the whole budget: one declares the largest length, one declares
    // none (chunked) and so reserves the largest. `Expect: 100-continue` makes the daemon say
    // when it starts reading the body, which it does only once the bytes are reserved.
    let mut slow = Vec::new();
    for framing in [
        "Content-Length: 16384\r\n",
        "Transfer-Encoding: chunked\r\n",
    ] {
        let headers = format!(
            "Stripe-Signature: {}\r\nExpect: 100-continue\r\n{framing}",
            well_formed_signature()
        );
        let mut stream = head_only(to, "/webhook/stripe_test", &headers).await;
        let got = answer(&mut stream).await;
        assert!(got.starts_with("HTTP/1.1 100 "), "{got}");
        slow.push(stream);
    }
    // A signed delivery (its event malformed: 400 once read) finds no room: 503, Retry-After.
    let body = br#"{"id":"evt_1","object":"event","type":"customer.updated"}"#;
    let deliver = || {
        app.http
            .post(format!("{}/webhook/stripe_test", app.base))
            .header("Stripe-Signature", sign_now("stripe_test", body))
            .body(body.to_vec())
            .send()
    };
    let refused = deliver().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");

    // One slow delivery gives up: its share comes back, and the next try is read.
    drop(slow.pop());
    let status = tokio::time::timeout(HANG, async {
        loop {
            let status = deliver().await.unwrap().status().as_u16();
            if status != 503 {
                return status;
            }
        }
    })
    .await
    .expect("the budget is released");
    assert_eq!(status, 400);
    drop(slow);
    app.stop().await;
}

/// Integration events of webhook requests, by app (null for none), event type and outcome.
async fn webhook_events(app: &TestApp) -> Vec<(Option<String>, String, i64)> {
    app.ctx.ops.events.flush(Duration::from_secs(10)).await;
    app.db()
        .await
        .query(
            "SELECT app_key, event_type, count(*) FROM supasaasy.integration_events
              WHERE event_type LIKE 'webhook.%' GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn a_refused_request_stores_no_body_and_one_to_no_app_stores_nothing() {
    let app = spawn_app(Setup {
        workers: false,
        extra_toml: "[webhook_logging]\nenabled = true\n".into(),
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    // A body read and refused by its MAC, a request to no app, and a verified one (its event
    // malformed) whose body is kept.
    let forged = format!(
        "{{\"id\":\"evt_forged\",\"padding\":\"{}\"}}",
        "x".repeat(1000)
    );
    let (status, _) = app
        .post_webhook(
            "stripe_test",
            forged.as_bytes(),
            Some(&well_formed_signature()),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .post_webhook(
            "nope",
            forged.as_bytes(),
            Some(&sign_now("stripe_test", forged.as_bytes())),
        )
        .await;
    assert_eq!(status, 404);
    let signed = br#"{"id":"evt_signed","object":"event","type":"customer.updated"}"#;
    let (status, _) = app
        .post_webhook(
            "stripe_test",
            signed,
            Some(&sign_now("stripe_test", signed)),
        )
        .await;
    assert_eq!(status, 400);

    let rows = app
        .db()
        .await
        .query(
            "SELECT app_key, status, body FROM supasaasy.webhook_logs ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(Option<String>, i32, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![
            (Some("stripe_test".into()), 401, None),
            (
                Some("stripe_test".into()),
                400,
                Some(String::from_utf8_lossy(signed).into_owned())
            ),
        ]
    );
    assert_eq!(
        webhook_events(&app).await,
        vec![(Some("stripe_test".into()), "webhook.rejected".into(), 2)],
        "no row for the app that does not exist"
    );
    let metrics = parse(&scrape(&app).await);
    let unknown = sum(
        &metrics,
        "supasaasy_webhooks_total",
        &[("app_key", "unknown")],
    );
    assert_eq!(unknown, Some(1.0), "counted instead");
    app.stop().await;
}

#[tokio::test]
async fn past_a_hundred_a_minute_refusals_are_counted_not_stored() {
    let app = spawn_app(Setup {
        workers: false,
        extra_toml: "[webhook_logging]\nenabled = true\n".into(),
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    let body = vec![b'x'; 1000];
    for _ in 0..300 {
        let (status, _) = app.post_webhook("stripe_test", &body, None).await;
        assert_eq!(status, 401);
    }
    assert_eq!(
        webhook_events(&app).await,
        vec![(Some("stripe_test".into()), "webhook.rejected".into(), 100)]
    );
    assert_eq!(app.count("webhook_logs").await, 100);
    let metrics = parse(&scrape(&app).await);
    let app_key = [("app_key", "stripe_test")];
    assert_eq!(
        sum(
            &metrics,
            "supasaasy_webhook_rejections_unrecorded_total",
            &app_key
        ),
        Some(200.0)
    );
    assert_eq!(
        sum(&metrics, "supasaasy_webhooks_total", &app_key),
        Some(300.0),
        "every one counted"
    );
    // A verified delivery is recorded whatever the count.
    let signed = br#"{"id":"evt_signed","object":"event","type":"customer.updated"}"#;
    let (status, _) = app
        .post_webhook(
            "stripe_test",
            signed,
            Some(&sign_now("stripe_test", signed)),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        webhook_events(&app).await,
        vec![(Some("stripe_test".into()), "webhook.rejected".into(), 101)]
    );
    assert_eq!(app.count("webhook_logs").await, 101);
    app.stop().await;
}

#[tokio::test]
async fn the_last_accepted_webhook_is_read_without_walking_past_refusals() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    let db = app.db().await;
    // One accepted webhook, then many refusals after it (older rows, written directly).
    db.batch_execute(
        "INSERT INTO supasaasy.integration_events (app_key, service, event_type, outcome, created_at)
         VALUES ('stripe_test', 'stripe', 'customer.updated', 'applied', now() - interval '1 day');
         INSERT INTO supasaasy.integration_events (app_key, service, event_type, outcome, created_at)
         SELECT 'stripe_test', 'stripe', 'webhook.rejected', 'rejected', now() - n * interval '1 ms'
           FROM generate_series(1, 20000) AS n;
         ANALYZE supasaasy.integration_events;",
    )
    .await
    .unwrap();
    // The query /health and /metrics ask (src/store/health.rs, `activity`) for an app's last
    // accepted webhook.
    let plan: Value = db
        .query_one(
            "EXPLAIN (ANALYZE, FORMAT JSON)
             SELECT created_at FROM supasaasy.integration_events e
              WHERE e.app_key = 'stripe_test'
                AND e.outcome IN ('applied', 'ignored', 'duplicate', 'stale')
              ORDER BY created_at DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let text = plan.to_string();
    assert!(text.contains("integration_events_app_accepted"), "{plan:#}");
    let mut removed = 0;
    walk(&plan, &mut |node| {
        removed += node["Rows Removed by Filter"].as_i64().unwrap_or(0);
    });
    assert_eq!(removed, 0, "no refusal is read: {plan:#}");
    let health = app
        .http
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await;
}

/// Calls `f` on every node of a JSON plan.
fn walk(v: &Value, f: &mut impl FnMut(&Value)) {
    match v {
        Value::Object(map) => {
            f(v);
            map.values().for_each(|c| walk(c, f));
        }
        Value::Array(items) => items.iter().for_each(|c| walk(c, f)),
        _ => {}
    }
}
