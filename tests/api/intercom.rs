//! The Intercom connector in the daemon: full sync parity with conversation parts, the companies
//! scroll under faults and across concurrent runs, incremental search, webhooks, and a Stripe app
//! beside an Intercom app in one database.

use serde_json::{json, Value};
use supasaasy_testkit::fake_intercom::{FakeIntercom, IntercomCounts, IntercomData};
use supasaasy_testkit::fake_stripe::{Counts, StripeData};

use crate::helpers::{spawn_app, Setup, TestApp};

const COLLECTIONS: [(&str, &str); 4] = [
    ("company", "intercom_company"),
    ("contact", "intercom_contact"),
    ("admin", "intercom_admin"),
    ("conversation", "intercom_conversation"),
];

fn data(contacts: usize, conversations: usize) -> IntercomData {
    IntercomData::generate(&IntercomCounts {
        companies: 230,
        contacts,
        admins: 5,
        conversations,
        parts_per_conversation: 4,
    })
}

fn setup(data: IntercomData) -> Setup {
    Setup {
        intercom: vec![("intercom_main".into(), data)],
        worker_toml: "concurrency = 4\npoll_interval_ms = 100\nretry_base_ms = 10\n".into(),
        ..Setup::default()
    }
}

fn fake(app: &TestApp) -> &FakeIntercom {
    &app.intercoms[0].fake
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn full(app: &TestApp, resources: Option<Value>) -> Value {
    let mut body = json!({"app_key": "intercom_main", "mode": "full", "immediate": true});
    if let Some(r) = resources {
        body["resource_types"] = r;
    }
    app.sync(body, 200).await
}

async fn assert_parity(app: &TestApp) {
    let fake = fake(app);
    for (resource, collection) in COLLECTIONS {
        let want = sorted(fake.ids(resource));
        assert!(!want.is_empty(), "{resource}");
        assert_eq!(
            app.live_ids("intercom_main", collection).await,
            want,
            "{resource} parity"
        );
    }
    let mut parts = Vec::new();
    for conv in fake.ids("conversation") {
        for part in fake.parts(&conv).unwrap() {
            parts.push(part["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        app.live_ids("intercom_main", "intercom_conversation_part")
            .await,
        sorted(parts),
        "parts parity"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_mirrors_contacts_conversations_and_parts() {
    let app = spawn_app(setup(data(2400, 500))).await;
    let done = full(&app, None).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_parity(&app).await;
    assert!(fake(&app).requests_with_version("2.14") > 0);
    assert_eq!(
        fake(&app).requests_with_version(""),
        0,
        "every request pins Intercom-Version"
    );

    let db = app.db().await;
    let conv = &fake(&app).ids("conversation")[3];
    let parts: i64 = db
        .query_one(
            "SELECT count(*) FROM supasaasy.intercom_conversation_parts WHERE conversation_id = $1",
            &[conv],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(parts, 4, "parts carry their conversation's id");
    for view in [
        "intercom_companies",
        "intercom_contacts",
        "intercom_admins",
        "intercom_conversations",
    ] {
        let n: i64 = db
            .query_one(
                &format!("SELECT count(*) FROM supasaasy.{view} WHERE synced_at IS NOT NULL"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(n > 0, "{view}");
    }
    let leads: i64 = db
        .query_one(
            "SELECT count(*) FROM supasaasy.intercom_contacts WHERE role = 'lead'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(leads > 0);

    // Deleted upstream: a clean full run tombstones it.
    let gone = fake(&app).ids("contact")[10].clone();
    fake(&app).delete("contact", &gone);
    let again = full(&app, Some(json!(["contact"]))).await;
    assert_eq!(again["status"], "completed");
    assert!(
        app.row("intercom_main", "intercom_contact", &gone)
            .await
            .unwrap()
            .1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_companies_scroll_survives_faults_and_concurrent_runs() {
    let app = spawn_app(setup(data(40, 10))).await;
    let fake = fake(&app);
    // A 500 mid-scroll restarts it; nothing is lost or swept.
    fake.fail_scroll_next(1, 500);
    let done = full(&app, Some(json!(["company"]))).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        app.live_ids("intercom_main", "intercom_company").await,
        sorted(fake.ids("company"))
    );

    // Two runs at once: one scroll per workspace, so they take turns instead of failing.
    let a = app
        .sync(
            json!({"app_key": "intercom_main", "mode": "full", "resource_types": ["company"]}),
            202,
        )
        .await;
    let b = app
        .sync(
            json!({"app_key": "intercom_main", "mode": "full", "resource_types": ["company"]}),
            202,
        )
        .await;
    for job in [a, b] {
        let doc = app.wait_job(job["job_id"].as_str().unwrap()).await;
        assert_eq!(doc["status"], "completed", "{doc}");
    }
    assert_eq!(
        app.live_ids("intercom_main", "intercom_company").await,
        sorted(fake.ids("company"))
    );

    // A scroll that never progresses is stopped instead of spinning forever, and the run fails
    // rather than sweeping the companies it never reached.
    fake.stuck_scroll(true);
    let stuck = full(&app, Some(json!(["company"]))).await;
    assert_eq!(stuck["status"], "failed", "{stuck}");
    assert!(
        stuck["error_message"]
            .as_str()
            .unwrap()
            .contains("did not progress"),
        "{stuck}"
    );
    assert_eq!(
        app.live_ids("intercom_main", "intercom_company").await,
        sorted(fake.ids("company"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sync_searches_updates_and_rate_limits_are_honoured() {
    let app = spawn_app(setup(data(600, 120))).await;
    let first = app
        .sync(json!({"app_key": "intercom_main", "immediate": true}), 200)
        .await;
    assert_eq!(first["status"], "completed", "{first}");
    assert_parity(&app).await;

    // As if that ran two hours ago; then changes an hour ago.
    let now = chrono::Utc::now().timestamp();
    let db = app.db().await;
    db.execute(
        "UPDATE supasaasy.sync_state SET incremental_cursor = $1",
        &[&(now - 7200).to_string()],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE supasaasy.entities SET source_updated_at = LEAST(source_updated_at, to_timestamp($1))",
        &[&((now - 7200) as f64)],
    )
    .await
    .unwrap();
    let fake = fake(&app);
    fake.set_clock(Some(now - 3600));
    let old_contact = fake.ids("contact")[0].clone();
    fake.update("contact", &old_contact, |c| {
        c["name"] = json!("Renamed Long Ago Contact")
    });
    let conv = fake.ids("conversation")[1].clone();
    let mut parts = fake.parts(&conv).unwrap();
    let mut extra = parts[0].clone();
    extra["id"] = json!("990000001");
    extra["body"] = json!("<p>a new reply</p>");
    parts.push(extra);
    fake.set_parts(&conv, parts);
    fake.update("conversation", &conv, |c| c["state"] = json!("closed"));
    fake.set_clock(None);
    // A tight rate limit: the connector waits for the reset instead of failing.
    fake.set_rate_limit(40, std::time::Duration::from_secs(1));

    let second = app
        .sync(json!({"app_key": "intercom_main", "immediate": true}), 200)
        .await;
    assert_eq!(second["status"], "completed", "{second}");
    let name: String = db
        .query_one(
            "SELECT name FROM supasaasy.intercom_contacts WHERE external_id = $1",
            &[&old_contact],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Renamed Long Ago Contact");
    let state: String = db
        .query_one(
            "SELECT state FROM supasaasy.intercom_conversations WHERE external_id = $1",
            &[&conv],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "closed");
    assert!(app
        .row("intercom_main", "intercom_conversation_part", "990000001")
        .await
        .is_some());
    fake.reset_rate_limit();
    assert_parity(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn intercom_webhooks_are_verified_mapped_and_ordered() {
    let app = spawn_app(Setup {
        workers: false,
        ..setup(data(30, 8))
    })
    .await;
    let fake = fake(&app);

    // Signatures.
    let ping = fake.notification("ping", json!({"type": "ping", "message": "hello"}));
    let body = serde_json::to_vec(&ping).unwrap();
    let bad = app
        .http
        .post(format!("{}/webhook/intercom_main", app.base))
        .header(
            "X-Hub-Signature",
            "sha1=0000000000000000000000000000000000000000",
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let missing = app
        .http
        .post(format!("{}/webhook/intercom_main", app.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let (status, answer) = app.deliver_intercom("intercom_main", &ping).await;
    assert_eq!((status, answer["action"].as_str()), (200, Some("ignored")));

    // Contacts: created (user and lead), updated, deleted; duplicates and stale ones change nothing.
    let mut lead = fake.get("contact", &fake.ids("contact")[0]).unwrap();
    lead["id"] = json!("65f0000000000000000000aa");
    lead["role"] = json!("lead");
    fake.upsert("contact", lead.clone());
    let created = fake.notification(
        "contact.lead.created",
        fake.get("contact", "65f0000000000000000000aa").unwrap(),
    );
    assert_eq!(
        app.deliver_intercom("intercom_main", &created).await.1["action"],
        "applied"
    );
    assert_eq!(
        app.deliver_intercom("intercom_main", &created).await.1["action"],
        "duplicate"
    );
    let user_id = fake.ids("contact")[2].clone();
    let older = fake.get("contact", &user_id).unwrap();
    fake.update("contact", &user_id, |c| {
        c["name"] = json!("Newer Name");
        c["updated_at"] = json!(older["updated_at"].as_i64().unwrap() + 100);
    });
    let newer = fake.notification(
        "contact.user.updated",
        fake.get("contact", &user_id).unwrap(),
    );
    assert_eq!(
        app.deliver_intercom("intercom_main", &newer).await.1["action"],
        "applied"
    );
    let stale = fake.notification("contact.user.updated", older);
    assert_eq!(
        app.deliver_intercom("intercom_main", &stale).await.1["action"],
        "stale"
    );
    assert_eq!(
        app.row("intercom_main", "intercom_contact", &user_id)
            .await
            .unwrap()
            .0["name"],
        "Newer Name"
    );
    let doomed = fake.get("contact", &fake.ids("contact")[4]).unwrap();
    let doomed_id = doomed["id"].as_str().unwrap().to_string();
    fake.delete("contact", &doomed_id);
    let deleted = fake.notification("contact.user.deleted", doomed);
    assert_eq!(
        app.deliver_intercom("intercom_main", &deleted).await.1["action"],
        "applied"
    );
    assert!(
        app.row("intercom_main", "intercom_contact", &doomed_id)
            .await
            .unwrap()
            .1
    );

    // Companies.
    let company_id = fake.ids("company")[0].clone();
    fake.update("company", &company_id, |c| c["name"] = json!("Renamed Co"));
    let company = fake.notification("company.updated", fake.get("company", &company_id).unwrap());
    assert_eq!(
        app.deliver_intercom("intercom_main", &company).await.1["action"],
        "applied"
    );
    assert_eq!(
        app.row("intercom_main", "intercom_company", &company_id)
            .await
            .unwrap()
            .0["name"],
        "Renamed Co"
    );

    // A conversation event refreshes the conversation and its parts from the API.
    let conv = fake.ids("conversation")[0].clone();
    let mut parts = fake.parts(&conv).unwrap();
    let mut reply = parts[0].clone();
    reply["id"] = json!("880000001");
    parts.push(reply);
    fake.set_parts(&conv, parts.clone());
    fake.update("conversation", &conv, |c| c["state"] = json!("open"));
    let mut item = fake.get("conversation", &conv).unwrap();
    item.as_object_mut().unwrap().remove("conversation_parts");
    for topic in ["conversation.admin.replied", "conversation.admin.closed"] {
        let event = fake.notification(topic, item.clone());
        let (status, answer) = app.deliver_intercom("intercom_main", &event).await;
        assert_eq!(status, 200, "{topic}: {answer}");
    }
    let mut want: Vec<String> = parts
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    want.sort();
    let got: Vec<String> = app
        .db()
        .await
        .query(
            "SELECT external_id FROM supasaasy.intercom_conversation_parts WHERE conversation_id = $1 ORDER BY 1",
            &[&conv],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(got, want);

    // Unmapped topics are acknowledged.
    let unknown = fake.notification("visitor.signed_up", json!({"type": "visitor", "id": "v1"}));
    assert_eq!(
        app.deliver_intercom("intercom_main", &unknown).await.1["action"],
        "ignored"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripe_app_and_an_intercom_app_share_one_database() {
    let app = spawn_app(Setup {
        apps: vec![(
            "stripe_side".into(),
            StripeData::generate(&Counts {
                customers: 300,
                ..Counts::default()
            }),
        )],
        ..setup(data(300, 60))
    })
    .await;
    let stripe = app
        .sync(
            json!({"app_key": "stripe_side", "mode": "full", "immediate": true}),
            200,
        )
        .await;
    let intercom = full(&app, None).await;
    assert_eq!(stripe["status"], "completed");
    assert_eq!(intercom["status"], "completed");
    assert_parity(&app).await;
    assert_eq!(
        app.live_ids("stripe_side", "stripe_customer").await,
        sorted(app.stripes[0].fake.ids("customer"))
    );
    let others: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.entities
              WHERE (app_key = 'stripe_side' AND collection_key LIKE 'intercom%')
                 OR (app_key = 'intercom_main' AND collection_key LIKE 'stripe%')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(others, 0);
    app.stop().await;
}

/// Live part ids of conversation `conv`, sorted.
async fn live_parts(app: &TestApp, conv: &str) -> Vec<String> {
    app.db()
        .await
        .query(
            "SELECT external_id FROM supasaasy.intercom_conversation_parts
              WHERE conversation_id = $1 ORDER BY 1",
            &[&conv],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_conversation_past_500_parts_keeps_the_older_parts_intercom_no_longer_serves() {
    let app = spawn_app(setup(data(20, 4))).await;
    let fake = fake(&app);
    let convs = fake.ids("conversation");
    let (long, gone) = (convs[0].clone(), convs[1].clone());
    let template = fake.parts(&long).unwrap()[0].clone();
    let part = |i: usize| {
        let mut p = template.clone();
        p["id"] = json!(format!("77{i:05}"));
        p
    };
    // 480 parts: Intercom serves them all, and the mirror learns each.
    fake.set_parts(&long, (0..480).map(part).collect());
    full(&app, None).await;
    let all: Vec<String> = sorted((0..480).map(|i| format!("77{i:05}")).collect());
    assert_eq!(live_parts(&app, &long).await, all);

    // 40 more: Intercom now serves the newest 500 only. A full run must not take the 20 oldest,
    // which still exist, for deleted; a conversation that is gone takes its parts along.
    fake.set_parts(&long, (0..520).map(part).collect());
    let gone_parts = live_parts(&app, &gone).await;
    assert!(!gone_parts.is_empty());
    assert!(fake.delete("conversation", &gone));
    full(&app, None).await;
    let all: Vec<String> = sorted((0..520).map(|i| format!("77{i:05}")).collect());
    assert_eq!(
        live_parts(&app, &long).await,
        all,
        "a full run keeps the parts Intercom no longer serves"
    );
    assert!(
        live_parts(&app, &gone).await.is_empty(),
        "swept with the conversation"
    );
    let tombstoned: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.entities
              WHERE collection_key = 'intercom_conversation_part' AND deleted_at IS NOT NULL
                AND external_id = ANY($1)",
            &[&gone_parts],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tombstoned as usize, gone_parts.len());

    // An event refreshes the conversation from the API: the newest 500 parts come back, and the
    // older ones stay.
    fake.set_parts(&long, (0..521).map(part).collect());
    fake.update("conversation", &long, |c| c["state"] = json!("open"));
    let mut item = fake.get("conversation", &long).unwrap();
    item.as_object_mut().unwrap().remove("conversation_parts");
    let event = fake.notification("conversation.admin.replied", item);
    let (status, answer) = app.deliver_intercom("intercom_main", &event).await;
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    let all: Vec<String> = sorted((0..521).map(|i| format!("77{i:05}")).collect());
    assert_eq!(
        live_parts(&app, &long).await,
        all,
        "an event keeps the parts Intercom no longer serves"
    );
    app.stop().await;
}
