//! `GET /metrics`: what a sync, webhooks and provider faults do to the series, read back from the
//! exposition text the way Prometheus would; no key needed and no secret shown.

use serde_json::json;
use supasaasy::task::TaskOutcome;
use supasaasy::worker::Worker;
use supasaasy_testkit::fake_stripe::{stripe_signature, Counts, StripeData};
use tokio_util::sync::CancellationToken;

use crate::helpers::{spawn_app, webhook_secret, Setup, TestApp, ADMIN_KEY};

const APP: &str = "stripe_test";

/// One sample of the exposition: `name{labels} value`.
#[derive(Debug)]
pub(crate) struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The samples of an exposition text; `#` lines (help, type, unit, EOF) are skipped.
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let value = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
            let Some((name, rest)) = series.split_once('{') else {
                return Sample {
                    name: series.into(),
                    labels: Vec::new(),
                    value,
                };
            };
            let body = rest.strip_suffix('}').expect("labels end with }");
            Sample {
                name: name.into(),
                labels: parse_labels(body),
                value,
            }
        })
        .collect()
}

/// `a="x",b="y \"quoted\""` as pairs, escapes undone.
fn parse_labels(body: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut chars = body.chars();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            return labels;
        }
        assert_eq!(chars.next(), Some('"'), "label {key} is quoted");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("a dangling escape"),
                },
                c => value.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_owned(), value));
    }
}

/// The sum of the samples of `name` carrying every label of `labels`; `None` when none does.
pub(crate) fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// Scrapes `/metrics` without any key: the body, checked for its framing.
pub(crate) async fn scrape(app: &TestApp) -> String {
    let resp = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

#[tokio::test]
async fn metrics_follow_a_full_sync_and_webhooks() {
    let app = spawn_app(Setup::stripe(StripeData::generate(&Counts {
        customers: 230,
        products: 3,
        prices_per_product: 2,
        subscriptions: 20,
        items_per_subscription: 2,
        canceled_every: 0,
        ..Counts::default()
    })))
    .await;
    let done = app
        .sync(
            json!({"app_key": APP, "mode": "full", "immediate": true}),
            200,
        )
        .await;
    assert_eq!(done["status"], "completed", "{done}");

    let text = scrape(&app).await;
    let samples = parse(&text);
    let app_key = ("app_key", APP);
    let written = sum(&samples, "supasaasy_objects_written_total", &[app_key]);
    assert_eq!(written, Some(app.count("entities").await as f64), "{text}");
    assert_eq!(
        written,
        done["processed_entities"].as_f64(),
        "every object synced is counted once"
    );
    assert_eq!(
        sum(
            &samples,
            "supasaasy_objects_written_total",
            &[app_key, ("resource", "customer")]
        ),
        Some(230.0)
    );
    // Every request the fake answered, and nothing else (230 customers take three pages alone).
    let requests = app.fake().requests() as f64;
    assert!(requests >= 7.0, "{requests}");
    assert_eq!(
        sum(
            &samples,
            "supasaasy_provider_requests_total",
            &[app_key, ("status", "200")]
        ),
        Some(requests)
    );
    assert_eq!(
        sum(&samples, "supasaasy_provider_requests_total", &[app_key]),
        Some(requests)
    );
    assert_eq!(
        sum(
            &samples,
            "supasaasy_job_duration_seconds_count",
            &[app_key, ("mode", "full"), ("status", "completed")]
        ),
        Some(1.0)
    );
    for status in ["pending", "processing"] {
        assert_eq!(
            sum(
                &samples,
                "supasaasy_queue_tasks",
                &[app_key, ("status", status)]
            ),
            Some(0.0),
            "{text}"
        );
    }
    assert_eq!(
        sum(&samples, "supasaasy_circuit_state", &[app_key]),
        Some(0.0)
    );
    assert_eq!(
        sum(&samples, "supasaasy_webhooks_queued", &[]),
        Some(0.0),
        "no delivery waits on an idle daemon"
    );
    assert_eq!(
        sum(&samples, "supasaasy_circuit_open", &[app_key]),
        Some(0.0)
    );
    assert_eq!(
        sum(&samples, "supasaasy_webhooks_total", &[]),
        None,
        "no webhook yet"
    );
    // When each resource last completed, from the database; no webhook accepted yet.
    let now = chrono::Utc::now().timestamp() as f64;
    for resource in ["customer", "invoice", "payment_method"] {
        let at = sum(
            &samples,
            "supasaasy_last_success_timestamp_seconds",
            &[app_key, ("resource", resource)],
        )
        .unwrap_or_else(|| panic!("{resource}: {text}"));
        assert!((now - 120.0..=now + 1.0).contains(&at), "{resource}: {at}");
    }
    assert_eq!(
        sum(&samples, "supasaasy_last_webhook_timestamp_seconds", &[]),
        None
    );
    assert!(text.contains("supasaasy_build_info{"), "{text}");

    // Webhooks: applied, then the same event again, then a forged one.
    let fake = app.fake();
    let id = fake.ids("customer")[3].clone();
    fake.update("customer", &id, |c| c["name"] = json!("Renamed"));
    let event = fake.last_event().unwrap();
    assert_eq!(app.deliver(APP, &event).await.1["action"], "applied");
    assert_eq!(app.deliver(APP, &event).await.1["action"], "duplicate");
    let body = serde_json::to_vec(&event).unwrap();
    let forged = stripe_signature("whsec_wrong", chrono::Utc::now().timestamp(), &body);
    assert_eq!(app.post_webhook(APP, &body, Some(&forged)).await.0, 401);

    let text = scrape(&app).await;
    let samples = parse(&text);
    for (event_type, outcome) in [
        ("customer.updated", "applied"),
        ("customer.updated", "duplicate"),
        ("webhook.rejected", "rejected"),
    ] {
        assert_eq!(
            sum(
                &samples,
                "supasaasy_webhooks_total",
                &[app_key, ("event_type", event_type), ("outcome", outcome)]
            ),
            Some(1.0),
            "{event_type} {outcome}: {text}"
        );
    }
    // Read from the integration events, which are written just after the answer.
    let at = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let samples = parse(&scrape(&app).await);
            if let Some(at) = sum(
                &samples,
                "supasaasy_last_webhook_timestamp_seconds",
                &[app_key],
            ) {
                return at;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the accepted webhook's time");
    assert!(at >= now - 1.0, "{at}");

    // No secret of the harness shows.
    for secret in [
        app.fake().api_key().to_string(),
        webhook_secret(APP),
        ADMIN_KEY.to_string(),
    ] {
        assert!(!text.contains(&secret), "{secret} in the metrics");
    }
    app.stop().await;
}

#[tokio::test]
async fn provider_errors_and_rate_limit_waits_are_counted() {
    let app = spawn_app(Setup {
        workers: false,
        worker_toml: "retry_base_ms = 1\nmax_attempts = 3\n".into(),
        ..Setup::stripe(StripeData::generate(&Counts {
            customers: 20,
            ..Counts::default()
        }))
    })
    .await;
    let job = app
        .sync(
            json!({"app_key": APP, "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    // Two 500s then a 429 (with `Retry-After: 1`), all retried in place.
    app.fake().fail_next(2, 500);
    let worker = Worker::new(app.ctx.clone());
    let run = || async {
        worker
            .try_execute_task(&CancellationToken::new())
            .await
            .unwrap()
            .expect("a task is due")
    };
    assert!(matches!(run().await, TaskOutcome::Completed { .. }));
    let job2 = app
        .sync(
            json!({"app_key": APP, "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    app.fake().fail_next(1, 429);
    assert!(matches!(run().await, TaskOutcome::Completed { .. }));
    for id in [&job, &job2] {
        app.wait_job(id["job_id"].as_str().unwrap()).await;
    }

    let text = scrape(&app).await;
    let samples = parse(&text);
    let app_key = ("app_key", APP);
    let status = |s: &str| {
        sum(
            &samples,
            "supasaasy_provider_requests_total",
            &[app_key, ("status", s)],
        )
    };
    assert_eq!(status("500"), Some(2.0), "{text}");
    assert_eq!(status("429"), Some(1.0), "{text}");
    assert_eq!(status("200"), Some(2.0), "one page per run: {text}");
    assert_eq!(
        sum(&samples, "supasaasy_rate_limit_waits_total", &[app_key]),
        Some(1.0)
    );
    let waited = sum(
        &samples,
        "supasaasy_rate_limit_wait_seconds_total",
        &[app_key],
    )
    .unwrap_or_default();
    assert!(waited >= 1.0, "Retry-After: 1 is honoured: {waited}");
    assert_eq!(
        sum(
            &samples,
            "supasaasy_job_duration_seconds_count",
            &[app_key, ("status", "completed")]
        ),
        Some(2.0)
    );
    app.stop().await;
}

#[test]
fn the_parser_reads_labels_and_escapes() {
    let samples =
        parse("# TYPE x counter\nx_total{a=\"1\",b=\"q\\\"u\\\\o,t=e\\n\"} 3\nplain 2.5\n# EOF\n");
    assert_eq!(samples.len(), 2);
    assert_eq!(samples[0].name, "x_total");
    assert_eq!(
        samples[0].labels,
        vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "q\"u\\o,t=e\n".to_string())
        ]
    );
    assert_eq!(sum(&samples, "plain", &[]), Some(2.5));
    assert_eq!(sum(&samples, "x_total", &[("b", "nope")]), None);
}

#[test]
fn the_example_dashboard_queries_only_series_that_exist() {
    let metrics = supasaasy::ops::metrics::Metrics::new();
    metrics.webhook(APP, "customer.updated", "applied");
    metrics.objects_written(APP, "customer", 1);
    metrics.provider_request(APP, Some(200));
    metrics.rate_limit_wait(APP, std::time::Duration::from_secs(1));
    metrics.job_ended(APP, "full", "completed", 1.0);
    let text = metrics.render(
        Some(&[]),
        &[(
            APP.to_string(),
            supasaasy::ops::breaker::CircuitState::Closed,
        )],
        (0, 0),
        None,
    );
    let names: Vec<String> = parse(&text).into_iter().map(|s| s.name).collect();

    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../examples/grafana-dashboard.json")).unwrap();
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 7);
    for panel in panels {
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{panel}");
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let used: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("supasaasy_"))
                .collect();
            assert!(!used.is_empty(), "{expr}");
            for name in used {
                assert!(names.iter().any(|n| n == name), "{name} in {expr}");
            }
        }
    }
}
