//! Alerts to Slack and Teams, against a fake receiver: `POST /alerts`, failed jobs once per repeat
//! window, retries (5xx, 429 with `Retry-After`), a hanging receiver that blocks nothing, a burst
//! of refused webhooks, and webhook URLs (their tokens) never shown anywhere.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use supasaasy::config::AlertKind;
use supasaasy::ops::alerts::Alert;
use supasaasy_testkit::fake_alerts::{Answer, FakeAlerts};
use supasaasy_testkit::fake_stripe::{stripe_signature, Counts, StripeData};

use crate::helpers::{spawn_app, Setup, TestApp};

/// Slack's URL shape; the last segment is the token.
const SLACK: &str = "/services/T000/B000/SECRETTOKEN123";
/// A Teams Workflows URL; the token is in the path too.
const TEAMS: &str = "/workflows/f00d/triggers/manual/SECRETTOKEN456";
const WAIT: Duration = Duration::from_secs(20);

fn data() -> StripeData {
    StripeData::generate(&Counts {
        customers: 120,
        products: 2,
        prices_per_product: 2,
        subscriptions: 20,
        items_per_subscription: 2,
        canceled_every: 0,
        ..Counts::default()
    })
}

/// A Stripe app with both channels on `receiver` and these extra `[alerts]` keys.
fn setup(receiver: &FakeAlerts, alerts: &str) -> Setup {
    Setup {
        extra_toml: format!(
            "[alerts]\nslack_webhook_url_env = \"SLACK_WEBHOOK_URL\"\nteams_webhook_url_env = \"TEAMS_WEBHOOK_URL\"\n{alerts}\n"
        ),
        env: vec![
            ("SLACK_WEBHOOK_URL".into(), receiver.url(SLACK)),
            ("TEAMS_WEBHOOK_URL".into(), receiver.url(TEAMS)),
        ],
        ..Setup::stripe(data())
    }
}

/// The same with Slack alone.
fn slack_only(receiver: &FakeAlerts, alerts: &str) -> Setup {
    Setup {
        extra_toml: format!("[alerts]\nslack_webhook_url_env = \"SLACK_WEBHOOK_URL\"\n{alerts}\n"),
        env: vec![("SLACK_WEBHOOK_URL".into(), receiver.url(SLACK))],
        ..Setup::stripe(data())
    }
}

/// `POST /alerts`: status and JSON.
async fn post_alert(app: &TestApp, body: Value) -> (u16, Value) {
    let resp = app
        .admin(Method::POST, "/alerts")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `GET /events?{query}`, polled until it holds `n` events.
async fn wait_events(app: &TestApp, query: &str, n: usize) -> Vec<Value> {
    let start = std::time::Instant::now();
    loop {
        let page: Value = app
            .admin(Method::GET, &format!("/events?{query}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = page["events"].as_array().cloned().unwrap_or_default();
        if events.len() >= n {
            return events;
        }
        assert!(
            start.elapsed() < WAIT,
            "/events?{query}: {} events, not {n}",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `text` of every Slack message received.
fn slack_texts(receiver: &FakeAlerts) -> Vec<String> {
    receiver
        .requests_to(SLACK)
        .iter()
        .map(|r| r.body["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits until at least `raised` alerts were raised and every alert raised is settled: held back
/// by the repeat window, or through with every channel (its Slack message received).
async fn settle(app: &TestApp, raised: u64) {
    let start = std::time::Instant::now();
    loop {
        let (so_far, settled) = app.ctx.ops.alerts.progress();
        if so_far >= raised && settled == so_far {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "{so_far} alerts raised (waiting for {raised}), {settled} settled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until a Slack message holding `want` arrives.
async fn wait_text(receiver: &FakeAlerts, want: &str) {
    let start = std::time::Instant::now();
    while !slack_texts(receiver).iter().any(|t| t.contains(want)) {
        assert!(start.elapsed() < WAIT, "no Slack message holds {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn alert(kind: AlertKind, title: &str) -> Alert {
    Alert {
        kind,
        app_key: "stripe_test".into(),
        title: title.into(),
        message: format!("{title}: details"),
    }
}

#[tokio::test]
async fn post_alerts_delivers_to_slack_and_teams_and_logs_it() {
    let receiver = FakeAlerts::start().await;
    let app = spawn_app(setup(&receiver, "")).await;
    let (status, answer) = post_alert(
        &app,
        json!({"title": "Deploy done", "message": "v2 is <live> & well"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"results": [
            {"service": "slack", "success": true, "error": null},
            {"service": "teams", "success": true, "error": null},
        ]})
    );

    let slack = receiver.requests_to(SLACK);
    assert_eq!(slack.len(), 1);
    assert_eq!(
        slack[0].body,
        json!({"text": "*Deploy done*\nv2 is &lt;live&gt; &amp; well"})
    );
    let teams = receiver.requests_to(TEAMS);
    assert_eq!(teams.len(), 1);
    let body = &teams[0].body;
    assert_eq!(body["type"], "message");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(card["body"][0]["type"], "TextBlock");
    assert_eq!(card["body"][0]["text"], "Deploy done");
    assert_eq!(card["body"][0]["weight"], "Bolder");
    assert_eq!(card["body"][1]["text"], "v2 is <live> & well");
    assert_eq!(card["body"][1]["wrap"], true);

    for (service, status) in [("slack", 200), ("teams", 202)] {
        let events = wait_events(&app, &format!("service={service}"), 1).await;
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e["event_type"], "alert.sent");
        assert_eq!(e["outcome"], "sent");
        assert_eq!(e["app_key"], Value::Null);
        assert_eq!(
            e["detail"],
            json!({"kind": "manual", "title": "Deploy done", "attempts": 1, "status": status})
        );
    }

    // One channel by name.
    let (status, answer) = post_alert(
        &app,
        json!({"title": "t", "message": "m", "channels": ["teams"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["results"].as_array().unwrap().len(), 1);
    assert_eq!(answer["results"][0]["service"], "teams");
    assert_eq!(receiver.requests_to(SLACK).len(), 1);
    assert_eq!(receiver.requests_to(TEAMS).len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn post_alerts_refuses_missing_keys_unconfigured_channels_and_bad_bodies() {
    let receiver = FakeAlerts::start().await;
    let app = spawn_app(slack_only(&receiver, "")).await;
    let anonymous = app
        .http
        .post(format!("{}/alerts", app.base))
        .json(&json!({"title": "t", "message": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let cases = [
        (
            json!({"title": "t", "message": "m", "channels": ["teams"]}),
            "channel \"teams\" is not configured (set alerts.teams_webhook_url_env)",
        ),
        (
            json!({"title": "t", "message": "m", "channels": ["slack", "email"]}),
            "unknown channel \"email\"",
        ),
        (
            json!({"title": "t", "message": "m", "channels": []}),
            "channels is empty",
        ),
        (json!({"message": "m"}), "invalid request body"),
        (json!({"title": "t", "message": 3}), "invalid request body"),
        (
            json!({"title": "t", "message": "m", "colour": "red"}),
            "invalid request body",
        ),
        (json!({"title": " ", "message": "m"}), "title"),
    ];
    for (body, want) in cases {
        let (status, answer) = post_alert(&app, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(want), "{body}: wanted {want:?} in {error:?}");
    }
    let not_json = app
        .admin(Method::POST, "/alerts")
        .body("title=t")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    assert!(receiver.requests().is_empty(), "nothing was sent");
    app.stop().await;

    // No channel at all: nothing to send to is an error too.
    let app = spawn_app(Setup::stripe(data())).await;
    let (status, answer) = post_alert(&app, json!({"title": "t", "message": "m"})).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no alert channel is configured"),
        "{answer}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failed_job_alerts_once_per_repeat_window() {
    for (alerts, expected) in [("", 1), ("repeat_after_s = 0", 2)] {
        let receiver = FakeAlerts::start().await;
        let app = spawn_app(slack_only(&receiver, alerts)).await;
        // The fake refuses the API key: every job fails at once.
        app.fake().fail_next(1_000_000, 401);
        for _ in 0..2 {
            let job = app
                .sync(
                    json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"], "immediate": true}),
                    200,
                )
                .await;
            assert_eq!(job["status"], "failed", "{job}");
        }
        settle(&app, 2).await;
        let failed: Vec<String> = slack_texts(&receiver)
            .into_iter()
            .filter(|t| t.contains("sync failed"))
            .collect();
        assert_eq!(failed.len(), expected, "[alerts] {alerts:?}: {failed:?}");
        assert!(
            failed[0].contains("stripe_test") && failed[0].contains("401"),
            "{failed:?}"
        );
        let sent = wait_events(&app, "service=slack&app_key=stripe_test", expected).await;
        assert_eq!(sent.len(), expected);
        assert!(sent.iter().all(|e| e["event_type"] == "alert.sent"
            && e["detail"]["kind"] == "job_failed"
            && e["detail"]["attempts"] == 1));
        app.stop().await;
    }
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff_honouring_retry_after() {
    let receiver = FakeAlerts::start().await;
    let app = spawn_app(Setup {
        workers: false,
        ..slack_only(&receiver, "")
    })
    .await;

    // Two 500s, then the standing 200.
    receiver.answer_next([Answer::Status(500), Answer::Status(500)]);
    app.ctx
        .ops
        .alerts
        .raise(alert(AlertKind::JobFailed, "after 500s"));
    receiver.wait_for(SLACK, 3, WAIT).await;
    let sent = wait_events(&app, "event_type=alert.sent", 1).await;
    assert_eq!(sent[0]["app_key"], "stripe_test");
    assert_eq!(
        sent[0]["detail"],
        json!({"kind": "job_failed", "title": "after 500s", "attempts": 3, "status": 200})
    );

    // A 429 waits as long as it says.
    receiver.answer_next([Answer::RateLimited {
        retry_after_secs: 1,
    }]);
    app.ctx
        .ops
        .alerts
        .raise(alert(AlertKind::CircuitOpen, "after a 429"));
    let got = receiver.wait_for(SLACK, 5, WAIT).await;
    let waited = got[4].at.duration_since(got[3].at);
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After: 1 honoured, waited {waited:?}"
    );
    let sent = wait_events(&app, "event_type=alert.sent", 2).await;
    assert_eq!(sent[0]["detail"]["title"], "after a 429");
    assert_eq!(sent[0]["detail"]["attempts"], 2);

    // POST /alerts retries twice, quickly, then reports the failure.
    receiver.set_answer(Answer::Status(503));
    let (status, answer) = post_alert(&app, json!({"title": "down", "message": "m"})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["results"][0]["success"], false, "{answer}");
    let error = answer["results"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("answered 503"), "{error}");
    assert_eq!(receiver.requests_to(SLACK).len(), 8);
    let failed = wait_events(&app, "event_type=alert.failed", 1).await;
    assert_eq!(failed[0]["outcome"], "failed");
    assert_eq!(failed[0]["detail"]["attempts"], 3);
    assert_eq!(failed[0]["detail"]["status"], 503);

    // A 4xx other than 429 is final.
    receiver.set_answer(Answer::Status(404));
    let (_, answer) = post_alert(&app, json!({"title": "gone", "message": "m"})).await;
    assert_eq!(answer["results"][0]["success"], false);
    assert_eq!(receiver.requests_to(SLACK).len(), 9);
    let failed = wait_events(&app, "event_type=alert.failed", 2).await;
    assert_eq!(failed[0]["detail"]["attempts"], 1);
    assert_eq!(failed[0]["detail"]["status"], 404);
    app.stop().await;
}

#[tokio::test]
async fn a_hanging_receiver_blocks_neither_syncs_nor_webhooks() {
    let receiver = FakeAlerts::start().await;
    receiver.set_answer(Answer::Hang(Duration::from_secs(30)));
    let app = spawn_app(setup(&receiver, "repeat_after_s = 0")).await;

    // A failed job raises an alert whose deliveries now hang.
    app.fake().fail_next(1_000_000, 401);
    let failed = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"], "immediate": true}),
            200,
        )
        .await;
    assert_eq!(failed["status"], "failed");
    app.fake().fail_next(0, 500);
    receiver.wait_for(SLACK, 1, WAIT).await;
    receiver.wait_for(TEAMS, 1, WAIT).await;

    // More alerts pile up behind them: refused webhooks, then alerts raised directly.
    let body = br#"{"id":"evt_x","object":"event","type":"customer.updated","created":1,"data":{"object":{"id":"cus_1","object":"customer"}}}"#;
    let forged = stripe_signature("whsec_forged", chrono::Utc::now().timestamp(), body);
    for _ in 0..10 {
        let (status, _) = app.post_webhook("stripe_test", body, Some(&forged)).await;
        assert_eq!(status, 401);
    }
    for i in 0..5 {
        app.ctx
            .ops
            .alerts
            .raise(alert(AlertKind::JobFailed, &format!("pile {i}")));
    }

    // A full sync and signed webhooks go through meanwhile.
    let done = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "immediate": true}),
            200,
        )
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    let id = app.fake().ids("customer")[0].clone();
    app.fake()
        .update("customer", &id, |c| c["name"] = json!("During the hang"));
    let event = app.fake().last_event().unwrap();
    let (status, answer) = app.deliver("stripe_test", &event).await;
    assert_eq!(status, 200, "{answer}");
    let (payload, _) = app
        .row("stripe_test", "stripe_customer", &id)
        .await
        .unwrap();
    assert_eq!(payload["name"], "During the hang");

    // Every later alert was dequeued and is being delivered too, while the first still hang.
    wait_text(&receiver, "were refused").await;
    for i in 0..5 {
        wait_text(&receiver, &format!("pile {i}")).await;
    }
    assert_eq!(
        receiver.answered(),
        0,
        "all of the above happened while the receiver was still hanging"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_refused_webhooks_raises_one_alert() {
    let receiver = FakeAlerts::start().await;
    let app = spawn_app(Setup {
        workers: false,
        ..slack_only(&receiver, "")
    })
    .await;
    let body = br#"{"id":"evt_x","object":"event","type":"customer.updated","created":1,"data":{"object":{"id":"cus_1","object":"customer"}}}"#;
    let forged = stripe_signature("whsec_forged", chrono::Utc::now().timestamp(), body);
    for _ in 0..9 {
        let (status, _) = app.post_webhook("stripe_test", body, Some(&forged)).await;
        assert_eq!(status, 401);
    }
    settle(&app, 0).await;
    assert!(
        !slack_texts(&receiver).iter().any(|t| t.contains("refused")),
        "nine are not a burst"
    );

    // The tenth makes a burst; ten more make another, which the repeat window holds back.
    for _ in 0..11 {
        let (status, _) = app.post_webhook("stripe_test", body, Some(&forged)).await;
        assert_eq!(status, 401);
    }
    settle(&app, 2).await;
    let refused: Vec<String> = slack_texts(&receiver)
        .into_iter()
        .filter(|t| t.contains("refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    let text = &refused[0];
    for want in [
        "10 webhooks for app stripe_test were refused in the last minute (bad signatures)",
        "stripe_test's webhook_secret_env",
        "Last reason: ",
    ] {
        assert!(text.contains(want), "wanted {want:?} in {text}");
    }
    let events = wait_events(&app, "service=slack&app_key=stripe_test", 1).await;
    assert_eq!(events[0]["detail"]["kind"], "webhook_rejections");
    app.stop().await;
}

#[tokio::test]
async fn webhook_urls_never_reach_events_answers_or_errors() {
    let receiver = FakeAlerts::start().await;
    // Every answer quotes the path, token and all.
    receiver.set_answer(Answer::Status(404));
    // Teams on a port nothing listens on: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let teams_url = format!("http://{}{TEAMS}", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app(Setup {
        extra_toml: "[alerts]\nslack_webhook_url_env = \"SLACK_WEBHOOK_URL\"\nteams_webhook_url_env = \"TEAMS_WEBHOOK_URL\"\n".into(),
        env: vec![
            ("SLACK_WEBHOOK_URL".into(), receiver.url(SLACK)),
            ("TEAMS_WEBHOOK_URL".into(), teams_url),
        ],
        ..Setup::stripe(data())
    })
    .await;
    let tokens = ["SECRETTOKEN123", "SECRETTOKEN456"];

    let (status, answer) = post_alert(&app, json!({"title": "t", "message": "m"})).await;
    assert_eq!(status, 200);
    let results = answer["results"].as_array().unwrap();
    assert!(results.iter().all(|r| r["success"] == false), "{answer}");
    let slack_error = results[0]["error"].as_str().unwrap();
    assert!(slack_error.starts_with("answered 404"), "{slack_error}");
    let teams_error = results[1]["error"].as_str().unwrap();
    assert!(
        teams_error.starts_with("could not connect"),
        "{teams_error}"
    );

    // A failed job's alert fails on Slack at once (a 404 is final).
    app.fake().fail_next(1_000_000, 401);
    let job = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"], "immediate": true}),
            200,
        )
        .await;
    assert_eq!(job["status"], "failed");
    wait_events(&app, "service=slack&event_type=alert.failed", 2).await;

    let mut seen = vec![answer.to_string()];
    for query in ["service=slack", "service=teams", "limit=1000"] {
        let page = app
            .admin(Method::GET, &format!("/events?{query}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        seen.push(page);
    }
    let job_id = job["job_id"].as_str().unwrap();
    for path in [
        format!("/jobs/{job_id}?include_tasks=true"),
        "/health".to_string(),
    ] {
        seen.push(
            app.admin(Method::GET, &path)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    let details = app
        .db()
        .await
        .query("SELECT detail::text FROM supasaasy.integration_events", &[])
        .await
        .unwrap();
    seen.extend(details.iter().map(|r| r.get::<_, String>(0)));
    for text in &seen {
        for token in tokens {
            assert!(!text.contains(token), "{token} leaked in {text}");
        }
    }
    assert!(
        seen.iter().any(|t| t.contains("injected failure at /***")),
        "the receiver's answer is quoted, scrubbed"
    );
    app.stop().await;
}
