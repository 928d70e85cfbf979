//! Objects the mirror cannot store as they come: a NUL in a string (removed), a lone surrogate
//! (replaced by U+FFFD), a number past `numeric`'s range or an id Postgres cannot hold (left out
//! and recorded in `skipped_entities`), a fetch answered with another object. In full runs,
//! incremental runs and webhooks, the rest lands, nothing is swept, the operator is told which
//! object it was, and the next run tries it again. Also: the provider's state wins over a row
//! stamped by a provider clock ahead of the daemon's.

use serde_json::{json, Value};
use supasaasy_testkit::fake_intercom::{IntercomCounts, IntercomData};

use crate::helpers::{customers, sign_now, spawn_app, Setup, TestApp};

fn customers_only(workers: bool) -> Setup {
    Setup {
        app_extra: "sync_resources = [\"customer\"]\n".into(),
        workers,
        worker_toml: "concurrency = 4\npoll_interval_ms = 100\nretry_base_ms = 10\n".into(),
        ..Setup::stripe(customers(300))
    }
}

async fn run(app: &TestApp, mode: &str) -> Value {
    let body = json!({"app_key": "stripe_test", "mode": mode, "immediate": true});
    app.sync(body, 200).await
}

/// The rows of `skipped_entities`: id, reason, source, job, event, attempts; by id.
async fn skipped(
    app: &TestApp,
) -> Vec<(String, String, String, Option<String>, Option<String>, i32)> {
    let rows = app
        .db()
        .await
        .query(
            "SELECT external_id, reason, source, job_id::text, event_id, attempts
               FROM supasaasy.skipped_entities ORDER BY external_id",
            &[],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

async fn scrape(app: &TestApp) -> String {
    app.http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn customer(app: &TestApp, id: &str) -> Option<(Value, bool)> {
    app.row("stripe_test", "stripe_customer", id).await
}

fn name(row: Option<(Value, bool)>) -> Value {
    let (payload, deleted) = row.expect("the row exists");
    assert!(!deleted);
    payload["name"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_the_database_refuses_hold_up_nothing_in_full_and_incremental_runs() {
    let app = spawn_app(customers_only(true)).await;
    let fake = app.fake();
    let first = run(&app, "full").await;
    assert_eq!(first["status"], "completed", "{first}");
    let ids = fake.ids("customer");
    let (nul, surrogate, number) = (&ids[10], &ids[20], &ids[30]);
    let (number_before, _) = app
        .row("stripe_test", "stripe_customer", number)
        .await
        .unwrap();

    // A NUL and a lone surrogate, which Stripe accepts, and a number no `numeric` holds.
    fake.update("customer", nul, |c| c["name"] = json!("Ada\u{0}Lovelace"));
    fake.update("customer", surrogate, |c| {
        c["name"] = json!("POISON_SURROGATE")
    });
    fake.update("customer", number, |c| {
        c["metadata"] = json!({"n": "POISON_NUMBER"})
    });
    fake.rewrite_answers("/v1/", "\"POISON_SURROGATE\"", "\"Bad \\ud83d\"");
    fake.rewrite_answers("/v1/", "\"POISON_NUMBER\"", "1e200000");
    let full = run(&app, "full").await;
    assert_eq!(full["status"], "completed", "{full}");
    assert_eq!(full["processed_entities"], 299, "{full}");
    assert_eq!(full["skipped_entities"], 1, "{full}");
    assert_eq!(full["tasks"][0]["skipped_entities"], 1, "{full}");
    assert_eq!(name(customer(&app, nul).await), "AdaLovelace");
    assert_eq!(name(customer(&app, surrogate).await), "Bad \u{fffd}");
    // Left out, not swept: the row stays as the mirror had it.
    assert_eq!(
        customer(&app, number).await,
        Some((number_before.clone(), false))
    );
    let full_job = full["job_id"].as_str().unwrap().to_owned();
    let recorded = skipped(&app).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let (id, reason, source, job, _, attempts) = &recorded[0];
    assert_eq!(
        (id, source.as_str(), job.as_deref(), *attempts),
        (number, "sync", Some(full_job.as_str()), 1)
    );
    assert!(reason.contains("numeric"), "{reason}");
    let metrics = scrape(&app).await;
    assert!(
        metrics.contains(
            r#"supasaasy_objects_skipped_total{app_key="stripe_test",resource="customer",source="sync"} 1"#
        ),
        "{metrics}"
    );

    // An incremental run: the skipped object is fetched again first (still refused), and an
    // event about an object whose id Postgres cannot hold is quarantined while the others apply.
    let now = chrono::Utc::now().timestamp();
    app.set_cursors(now - 3600).await;
    fake.set_clock(Some(now - 1800));
    let mut bad = fake.get("customer", &ids[50]).unwrap();
    bad["id"] = json!("cus_bad\u{0}id");
    bad["created"] = json!(now - 1800);
    fake.upsert("customer", bad);
    fake.update("customer", &ids[40], |c| c["name"] = json!("Changed"));
    fake.set_clock(None);
    let incremental = run(&app, "incremental").await;
    assert_eq!(incremental["status"], "completed", "{incremental}");
    assert_eq!(incremental["skipped_entities"], 2, "{incremental}");
    assert_eq!(name(customer(&app, &ids[40]).await), "Changed");
    let inc_job = incremental["job_id"].as_str().unwrap().to_owned();
    let recorded = skipped(&app).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    let bad_id = "cus_bad\u{fffd}id".to_string();
    assert_eq!(recorded[0].0, bad_id);
    assert_eq!(recorded[0].2, "events_api");
    assert_eq!(recorded[0].3.as_deref(), Some(inc_job.as_str()));
    assert!(recorded[0]
        .4
        .as_deref()
        .is_some_and(|e| e.starts_with("evt_")));
    assert_eq!((&recorded[1].0, recorded[1].5), (number, 2), "tried again");
    let quarantined: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.provider_events WHERE action = 'quarantined'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(quarantined, 1);

    // The provider mends the object: the next incremental run stores it and forgets it.
    fake.stop_rewriting();
    app.set_cursors(chrono::Utc::now().timestamp() - 3600).await;
    let mended = run(&app, "incremental").await;
    assert_eq!(mended["status"], "completed", "{mended}");
    let (payload, deleted) = customer(&app, number).await.unwrap();
    assert!(!deleted);
    assert_eq!(payload["metadata"]["n"], "POISON_NUMBER");
    let recorded = skipped(&app).await;
    assert_eq!(
        recorded.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
        vec![bad_id.clone()]
    );

    // A full run refuses the bad id in its listing again, and forgets nothing it wrote.
    let again = run(&app, "full").await;
    assert_eq!(again["status"], "completed", "{again}");
    assert_eq!(again["skipped_entities"], 1, "{again}");
    let recorded = skipped(&app).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!((&recorded[0].0, recorded[0].2.as_str()), (&bad_id, "sync"));
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_the_database_refuses_is_quarantined_and_blocks_nothing() {
    let app = spawn_app(customers_only(false)).await;
    let fake = app.fake();
    let ids = fake.ids("customer");

    // A NUL is removed; a lone surrogate (which no JSON reader takes as text) becomes U+FFFD.
    fake.update("customer", &ids[0], |c| c["name"] = json!("A\u{0}B"));
    let nul = fake.last_event().unwrap();
    assert_eq!(
        app.deliver("stripe_test", &nul).await.1["action"],
        "applied"
    );
    fake.update("customer", &ids[1], |c| c["name"] = json!("POISON"));
    let text = serde_json::to_string(&fake.last_event().unwrap())
        .unwrap()
        .replace("\"POISON\"", "\"x\\udc00y\"");
    let (status, answer) = app
        .post_webhook(
            "stripe_test",
            text.as_bytes(),
            Some(&sign_now("stripe_test", text.as_bytes())),
        )
        .await;
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    assert_eq!(name(customer(&app, &ids[0]).await), "AB");
    assert_eq!(name(customer(&app, &ids[1]).await), "x\u{fffd}y");

    // An object whose id Postgres cannot hold, delivered with good events at once: it is
    // quarantined (2xx, so the provider does not deliver it for days), the others apply.
    let mut bad = fake.get("customer", &ids[2]).unwrap();
    bad["id"] = json!("cus_\u{0}");
    fake.upsert("customer", bad);
    let poison = fake.last_event().unwrap();
    let mut good = Vec::new();
    for (n, id) in ids[3..9].iter().enumerate() {
        fake.update("customer", id, |c| c["name"] = json!(format!("Good {n}")));
        good.push(fake.last_event().unwrap());
    }
    let deliveries = std::iter::once(&poison)
        .chain(&good)
        .map(|event| app.deliver("stripe_test", event));
    let answers = futures_util::future::join_all(deliveries).await;
    assert_eq!(answers[0].0, 200, "{:?}", answers[0]);
    assert_eq!(answers[0].1["action"], "quarantined", "{:?}", answers[0]);
    for (status, answer) in &answers[1..] {
        assert_eq!(
            (*status, answer["action"].as_str()),
            (200, Some("applied")),
            "{answer}"
        );
    }
    for (n, id) in ids[3..9].iter().enumerate() {
        assert_eq!(name(customer(&app, id).await), format!("Good {n}"));
    }
    let recorded = skipped(&app).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let (id, reason, source, job, event, _) = &recorded[0];
    assert_eq!(id, "cus_\u{fffd}");
    assert_eq!((source.as_str(), job), ("webhook", &None));
    assert_eq!(event.as_deref(), poison["id"].as_str());
    assert!(!reason.contains("unavailable"), "{reason}");
    // Delivered again, it is a duplicate; the deliveries after it are applied.
    assert_eq!(
        app.deliver("stripe_test", &poison).await.1["action"],
        "duplicate"
    );
    fake.update("customer", &ids[9], |c| c["name"] = json!("After"));
    let after = fake.last_event().unwrap();
    assert_eq!(
        app.deliver("stripe_test", &after).await.1["action"],
        "applied"
    );
    let metrics = scrape(&app).await;
    assert!(
        metrics.contains(
            r#"supasaasy_objects_skipped_total{app_key="stripe_test",resource="customer",source="webhook"} 1"#
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_providers_state_wins_over_a_provider_clock_ahead_of_ours() {
    let app = spawn_app(customers_only(false)).await;
    let fake = app.fake();
    let id = fake.ids("customer")[0].clone();
    // The provider's clock runs 30 s ahead of the daemon's.
    let ahead = chrono::Utc::now().timestamp() + 30;
    fake.set_clock(Some(ahead));
    fake.update("customer", &id, |c| c["name"] = json!("Last name"));
    let update = fake.last_event().unwrap();
    assert_eq!(
        app.deliver("stripe_test", &update).await.1["action"],
        "applied"
    );
    // Deleted in the same second: the order is settled by asking Stripe, whose answer (gone)
    // is newer than the row however the clocks stand.
    fake.delete("customer", &id);
    let deletion = fake.last_event().unwrap();
    assert_eq!(deletion["created"], update["created"]);
    let (status, answer) = app.deliver("stripe_test", &deletion).await;
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    let (_, deleted) = app
        .row("stripe_test", "stripe_customer", &id)
        .await
        .unwrap();
    assert!(deleted, "the deletion is in the mirror");
    // The update delivered again under another id is older than the fetched truth: stale.
    let mut replay = update.clone();
    replay["id"] = json!("evt_replayed_update");
    let (_, answer) = app.deliver("stripe_test", &replay).await;
    assert_eq!(answer["action"], "stale", "{answer}");
    let (_, deleted) = app
        .row("stripe_test", "stripe_customer", &id)
        .await
        .unwrap();
    assert!(deleted, "still deleted");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_answered_as_another_object_is_left_out_alone() {
    let data = IntercomData::generate(&IntercomCounts {
        companies: 3,
        contacts: 5,
        admins: 2,
        conversations: 12,
        parts_per_conversation: 2,
    });
    let app = spawn_app(Setup {
        intercom: vec![("intercom_main".into(), data)],
        worker_toml: "concurrency = 4\npoll_interval_ms = 100\nretry_base_ms = 10\n".into(),
        ..Setup::default()
    })
    .await;
    let fake = &app.intercoms[0].fake;
    let mut conversations = fake.ids("conversation");
    conversations.sort();
    let (odd, other) = (&conversations[3], &conversations[4]);
    // Intercom answers the fetch of one listed conversation with another conversation.
    fake.rewrite_answers(
        &format!("/conversations/{odd}"),
        &format!("\"id\":\"{odd}\""),
        &format!("\"id\":\"{other}\""),
    );
    let body = json!({"app_key": "intercom_main", "mode": "full", "immediate": true,
                      "resource_types": ["conversation"]});
    let job = app.sync(body, 200).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["skipped_entities"], 1, "{job}");
    let mut live = app.live_ids("intercom_main", "intercom_conversation").await;
    live.sort();
    let mut want = conversations.clone();
    want.retain(|c| c != odd);
    assert_eq!(live, want);
    let recorded = skipped(&app).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!((&recorded[0].0, recorded[0].2.as_str()), (odd, "sync"));
    assert!(
        recorded[0].1.contains("another object"),
        "{:?}",
        recorded[0]
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_provider_holds_up_no_other_apps_webhooks() {
    let app = spawn_app(Setup {
        apps: vec![
            ("stripe_slow".into(), customers(20)),
            ("stripe_fast".into(), customers(20)),
        ],
        workers: false,
        ..Setup::default()
    })
    .await;
    let (slow, fast) = (&app.stripes[0].fake, &app.stripes[1].fake);
    // Three objects of the slow app, each with two states in one second: the second delivery
    // must ask Stripe which is the latest.
    let at = chrono::Utc::now().timestamp() - 30;
    slow.set_clock(Some(at));
    let mut conflicts = Vec::new();
    for id in slow.ids("customer").iter().take(3) {
        slow.update("customer", id, |c| c["name"] = json!("First"));
        let first = slow.last_event().unwrap();
        assert_eq!(
            app.deliver("stripe_slow", &first).await.1["action"],
            "applied"
        );
        slow.update("customer", id, |c| c["name"] = json!("Second"));
        conflicts.push(slow.last_event().unwrap());
    }
    // Stripe now takes three seconds an answer for that app: more than both lanes' worth of
    // deliveries wait for it.
    slow.set_latency(std::time::Duration::from_secs(3));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut waiting = Vec::new();
    for event in conflicts {
        let (base, http, done) = (app.base.clone(), app.http.clone(), done_tx.clone());
        let body = serde_json::to_vec(&event).unwrap();
        waiting.push(tokio::spawn(async move {
            let answer = http
                .post(format!("{base}/webhook/stripe_slow"))
                .header("Stripe-Signature", sign_now("stripe_slow", &body))
                .body(body)
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            let _ = done.send(("slow", status));
        }));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The other app's deliveries meanwhile are all answered before any of the slow ones.
    for id in fast.ids("customer").iter().take(10) {
        fast.update("customer", id, |c| c["name"] = json!("Fast"));
        let event = fast.last_event().unwrap();
        let (status, answer) = app.deliver("stripe_fast", &event).await;
        assert_eq!(
            (status, answer["action"].as_str()),
            (200, Some("applied")),
            "{answer}"
        );
        let _ = done_tx.send(("fast", status));
    }
    drop(done_tx);
    for handle in waiting {
        handle.await.unwrap();
    }
    let mut order = Vec::new();
    while let Some((app_key, status)) = done_rx.recv().await {
        assert_eq!(status, 200, "{app_key}");
        order.push(app_key);
    }
    assert_eq!(order[..10], ["fast"; 10], "{order:?}");
    assert_eq!(order[10..], ["slow"; 3], "{order:?}");
    for id in slow.ids("customer").iter().take(3) {
        let (row, _) = app.row("stripe_slow", "stripe_customer", id).await.unwrap();
        assert_eq!(row["name"], "Second");
    }
    app.stop().await;
}
