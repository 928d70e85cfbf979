//! Billing and payments, every resource of the connector's table end to end against the fake
//! Stripe: a full sync lands each in its view (truncated children and per-customer lists
//! included), each webhook type lands or tombstones, an incremental run applies their events and
//! re-lists balance transactions, a per-customer run resumes after a crash, a list refusing the
//! `created` filter is walked unfiltered, and what must never be swept is not.

use std::time::Duration;

use serde_json::{json, Value};
use supasaasy::task::TaskOutcome;
use supasaasy::worker::Worker;
use supasaasy_stripe::resources::{Parent, StripeResource, TABLE};
use supasaasy_testkit::fake_stripe::{fixture, Counts, StripeData};
use tokio_util::sync::CancellationToken;

use crate::helpers::{fake_ids, spawn_app, Setup, TestApp};

const APP: &str = "stripe_test";

/// The view of a collection: `stripe_invoice` is `supasaasy.stripe_invoices`.
fn view_of(collection_key: &str) -> String {
    format!("supasaasy.{collection_key}s")
}

/// The test kit's name of a child collection: `stripe_invoice_line_item` is `invoice_line_item`.
fn child_name(collection_key: &str) -> &str {
    collection_key.trim_start_matches("stripe_")
}

/// Sorted ids of the discounts the fake's customers carry.
fn carried_discounts(app: &TestApp) -> Vec<String> {
    let fake = app.fake();
    let mut ids: Vec<String> = fake
        .ids("customer")
        .iter()
        .filter_map(|c| fake.get("customer", c))
        .filter_map(|c| c["discount"]["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

async fn full(app: &TestApp, resources: Option<&[&str]>) -> Value {
    let mut body = json!({"app_key": APP, "mode": "full", "immediate": true});
    if let Some(resources) = resources {
        body["resource_types"] = json!(resources);
    }
    app.sync(body, 200).await
}

async fn view_count(app: &TestApp, view: &str) -> i64 {
    app.db()
        .await
        .query_one(
            &format!("SELECT count(*) FROM {view} WHERE app_key = $1"),
            &[&APP],
        )
        .await
        .unwrap()
        .get(0)
}

/// The resources of an app without Stripe Connect: all but the connected accounts.
fn own_rows() -> impl Iterator<Item = &'static StripeResource> {
    TABLE.iter().filter(|r| !r.connected_accounts)
}

/// Every listed resource (children too) matches the fake, and every view shows as many rows.
async fn assert_mirrors_the_fake(app: &TestApp) {
    let fake = app.fake();
    for row in own_rows() {
        let want = match row.parent {
            Parent::Unlisted => carried_discounts(app),
            _ => fake_ids(fake, row.name),
        };
        assert!(!want.is_empty(), "the fake serves some {}", row.name);
        let got = app.live_ids(APP, row.collection_key).await;
        assert_eq!(got, want, "{} parity", row.name);
        assert_eq!(
            view_count(app, &view_of(row.collection_key)).await,
            want.len() as i64,
            "{} view",
            row.name
        );
        if let Some(child) = row.child {
            let want = fake_ids(fake, child_name(child.collection_key));
            assert!(
                !want.is_empty(),
                "the fake serves some {}",
                child.collection_key
            );
            assert_eq!(
                app.live_ids(APP, child.collection_key).await,
                want,
                "{} parity",
                child.collection_key
            );
            assert_eq!(
                view_count(app, &view_of(child.collection_key)).await,
                want.len() as i64,
                "{} view",
                child.collection_key
            );
        }
    }
}

#[tokio::test]
async fn a_full_sync_lands_every_resource_in_its_view() {
    let app = spawn_app(Setup::stripe(StripeData::generate(&Counts::everything()))).await;
    // An invoice with more lines than Stripe embeds: the rest come from its lines endpoint.
    let long = app
        .fake()
        .ids("invoice")
        .into_iter()
        .find(|id| app.fake().get("invoice", id).unwrap()["lines"]["has_more"] == json!(true))
        .expect("a long invoice");
    let done = full(&app, None).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["completed_tasks"], own_rows().count());
    assert_mirrors_the_fake(&app).await;

    let lines: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.stripe_invoice_line_items
              WHERE app_key = $1 AND invoice_id = $2",
            &[&APP, &long],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        lines,
        app.fake().get("invoice", &long).unwrap()["lines"]["total_count"]
            .as_i64()
            .unwrap()
    );
    // Credit note lines name their credit note.
    let orphans: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.stripe_credit_note_line_items WHERE credit_note_id IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0);
    app.stop().await;
}

/// A fresh event of `event_type` carrying `object`, at Unix time `created`.
fn event(n: usize, event_type: &str, object: &Value, created: i64) -> Value {
    json!({"id": format!("evt_billing_{n}"), "object": "event", "type": event_type,
        "created": created, "livemode": false, "api_version": "2025-08-27.basil",
        "data": {"object": object}})
}

#[tokio::test]
async fn every_webhook_type_lands_in_its_view_or_tombstones() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    let t0 = chrono::Utc::now().timestamp() - 200;
    let mut n = 0;
    for row in own_rows() {
        let mut object = fixture(row.object);
        let id = format!("{}_hook", object["id"].as_str().unwrap_or("x"));
        object["id"] = json!(id);
        // Deletions last: after one, nothing of the object is newer.
        let mut types: Vec<&str> = row.events.to_vec();
        types.sort_by_key(|t| row.deleted_by.contains(t));
        for t in types {
            n += 1;
            let mut state = object.clone();
            state["metadata"] = json!({"by": t});
            let (status, answer) = app.deliver(APP, &event(n, t, &state, t0 + n as i64)).await;
            assert_eq!(
                (status, answer["action"].as_str()),
                (200, Some("applied")),
                "{t}: {answer}"
            );
            let (payload, deleted) = app
                .row(APP, row.collection_key, &id)
                .await
                .unwrap_or_else(|| panic!("{t} wrote no row"));
            assert_eq!(deleted, row.deleted_by.contains(&t), "{t}");
            if !deleted {
                assert_eq!(payload["metadata"]["by"], t, "{t}");
            }
            let visible: i64 = app
                .db()
                .await
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {} WHERE external_id = $1",
                        view_of(row.collection_key)
                    ),
                    &[&id],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(visible, i64::from(!deleted), "{t} in the view");
        }
    }
    // Parents bring their children: the fixture invoice's and credit note's lines.
    for (collection, parent) in [
        (
            "stripe_invoice_line_item",
            "in_1Pgc6tB7WZ01zgkWu9fdqL6I_hook",
        ),
        (
            "stripe_credit_note_line_item",
            "cn_1Pgc75B7WZ01zgkWJMPt5riP_hook",
        ),
    ] {
        let field = if collection.contains("invoice") {
            "invoice"
        } else {
            "credit_note"
        };
        let n: i64 = app
            .db()
            .await
            .query_one(
                &format!(
                    "SELECT count(*) FROM supasaasy.entities
                      WHERE collection_key = $1 AND raw_payload ->> '{field}' = $2"
                ),
                &[&collection, &parent],
            )
            .await
            .unwrap()
            .get(0);
        assert!(n > 0, "{collection} of {parent}");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_event_whose_object_is_not_what_its_type_promises_is_ignored_and_recorded() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let charge = fixture("charge");
    let (status, answer) = app
        .deliver(APP, &event(1, "charge.dispute.created", &charge, now))
        .await;
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );
    assert_eq!(app.count("entities").await, 0, "written nowhere");
    // The id-less invoice.upcoming is acknowledged too.
    let mut upcoming = fixture("invoice");
    upcoming.as_object_mut().unwrap().remove("id");
    let (status, answer) = app
        .deliver(APP, &event(2, "invoice.upcoming", &upcoming, now))
        .await;
    assert_eq!((status, answer["action"].as_str()), (200, Some("ignored")));
    assert_eq!(app.count("entities").await, 0);

    let events = app
        .admin(
            reqwest::Method::GET,
            "/events?event_type=charge.dispute.created&service=stripe",
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let recorded = &events["events"][0];
    assert_eq!(recorded["outcome"], "ignored", "{events}");
    let reason = recorded["detail"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("dispute") && reason.contains("charge"),
        "{reason}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_incremental_run_applies_every_resource_and_relists_balance_transactions() {
    let app = spawn_app(Setup::stripe(StripeData::generate(&Counts::everything()))).await;
    assert_eq!(full(&app, None).await["status"], "completed");
    let now = chrono::Utc::now().timestamp();
    app.set_cursors(now - 3600).await;
    let fake = app.fake();
    fake.set_clock(Some(now - 1800));

    // One object of each listed resource changes; a draft invoice is deleted.
    let mut changed = Vec::new();
    for row in own_rows().filter(|r| r.parent != Parent::Unlisted && !r.events.is_empty()) {
        let id = fake.ids(row.name)[0].clone();
        assert!(fake.update(row.name, &id, |o| o["metadata"] = json!({"touched": "yes"})));
        changed.push((row, id));
    }
    let draft = fake.ids("invoice")[1].clone();
    fake.delete("invoice", &draft);
    // A new balance transaction, and an old pending one that became available.
    let bts = fake.ids("balance_transaction");
    let pending = bts
        .iter()
        .rev()
        .find(|id| fake.get("balance_transaction", id).unwrap()["status"] == "pending")
        .expect("a pending balance transaction")
        .clone();
    fake.update("balance_transaction", &pending, |b| {
        b["status"] = json!("available")
    });
    let mut fresh = fake.get("balance_transaction", &bts[0]).unwrap();
    fresh["id"] = json!("txn_brandnew0001");
    fresh["created"] = json!(now - 1800);
    fake.upsert("balance_transaction", fresh);
    fake.set_clock(None);

    let done = app
        .sync(json!({"app_key": APP, "immediate": true}), 200)
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    for (row, id) in changed {
        let (payload, deleted) = app.row(APP, row.collection_key, &id).await.unwrap();
        if row.name == "invoice" && id == draft {
            continue;
        }
        assert!(!deleted, "{} {id}", row.name);
        assert_eq!(payload["metadata"]["touched"], "yes", "{} {id}", row.name);
    }
    assert!(
        app.row(APP, "stripe_invoice", &draft).await.unwrap().1,
        "tombstoned"
    );
    assert_eq!(
        app.row(APP, "stripe_balance_transaction", &pending)
            .await
            .unwrap()
            .0["status"],
        "available"
    );
    assert!(app
        .row(APP, "stripe_balance_transaction", "txn_brandnew0001")
        .await
        .is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_per_customer_run_resumes_after_a_crash_at_the_customer_it_had_reached() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(StripeData::generate(&Counts {
            customers: 450,
            others: 450,
            ..Counts::default()
        }))
    })
    .await;
    // The customers first, then their tax ids.
    let job = app
        .sync(
            json!({"app_key": APP, "mode": "full", "resource_types": ["customer"]}),
            202,
        )
        .await;
    let outcome = Worker::new(app.ctx.clone())
        .try_execute_task(&CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, Some(TaskOutcome::Completed { .. })),
        "{outcome:?} {job}"
    );
    let job = app
        .sync(
            json!({"app_key": APP, "mode": "full", "resource_types": ["tax_id"]}),
            202,
        )
        .await["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.fake().set_latency(Duration::from_millis(30));
    let worker = Worker::new(app.ctx.clone());
    let running =
        tokio::spawn(async move { worker.try_execute_task(&CancellationToken::new()).await });
    tokio::time::timeout(Duration::from_secs(60), async {
        while app.task_row(&job).await.1 < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("two batches committed");
    // The worker dies mid-batch: no release, no more writes.
    running.abort();
    let _ = running.await;
    let (status, _, _, cursor) = app.task_row(&job).await;
    assert_eq!(status, "processing");
    let reached = cursor.unwrap();
    assert!(reached.starts_with("parent:cus_"), "{reached}");
    app.fake().reset_requests();
    app.fake().set_latency(Duration::ZERO);
    app.db()
        .await
        .execute(
            "UPDATE supasaasy.sync_tasks SET lease_expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();
    let outcome = Worker::new(app.ctx.clone())
        .try_execute_task(&CancellationToken::new())
        .await
        .unwrap();
    assert!(
        matches!(outcome, Some(TaskOutcome::Completed { .. })),
        "{outcome:?}"
    );
    assert_eq!(
        app.live_ids(APP, "stripe_tax_id").await,
        fake_ids(app.fake(), "tax_id")
    );
    // The customers before the one reached were not listed again.
    let customers = fake_ids(app.fake(), "customer");
    let after = customers
        .iter()
        .filter(|c| c.as_str() > reached.trim_start_matches("parent:"))
        .count() as u64;
    assert_eq!(app.fake().requests_to("/v1/customers/"), after);
    app.stop().await;
}

#[tokio::test]
async fn a_list_refusing_the_created_filter_is_walked_unfiltered() {
    let app = spawn_app(Setup::stripe(StripeData::generate(&Counts::everything()))).await;
    app.fake().refuse_created_filter(true);
    let done = full(&app, Some(&["customer", "product", "invoice", "charge"])).await;
    assert_eq!(done["status"], "completed", "{done}");
    for name in ["customer", "product", "invoice", "charge"] {
        let row = StripeResource::named(name).unwrap();
        assert_eq!(
            app.live_ids(APP, row.collection_key).await,
            fake_ids(app.fake(), name),
            "{name}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn what_may_not_be_swept_survives_a_complete_full_run() {
    let app = spawn_app(Setup::stripe(StripeData::generate(&Counts::everything()))).await;
    let kept = ["review", "tax_id", "payment_method"];
    let done = full(&app, None).await;
    assert_eq!(done["status"], "completed", "{done}");
    let discounts = app.live_ids(APP, "stripe_discount").await;
    assert!(!discounts.is_empty());
    let mut gone = Vec::new();
    for name in kept {
        let id = app.fake().ids(name)[0].clone();
        assert!(app.fake().delete(name, &id));
        gone.push((StripeResource::named(name).unwrap(), id));
    }
    // A customer without its discount now; the discount row stays (its deletion is an event).
    let customer = app
        .fake()
        .ids("customer")
        .into_iter()
        .find(|c| app.fake().get("customer", c).unwrap()["discount"].is_object())
        .unwrap();
    app.fake()
        .update("customer", &customer, |c| c["discount"] = Value::Null);
    let charge = app.fake().ids("charge")[0].clone();
    app.fake().delete("charge", &charge);
    let done = full(&app, None).await;
    assert_eq!(done["status"], "completed", "{done}");
    for (row, id) in gone {
        assert!(
            !app.row(APP, row.collection_key, &id).await.unwrap().1,
            "{} {id} is never swept",
            row.name
        );
    }
    assert_eq!(app.live_ids(APP, "stripe_discount").await, discounts);
    // A charge that left the list is swept as any other.
    assert!(app.row(APP, "stripe_charge", &charge).await.unwrap().1);
    app.stop().await;
}

#[tokio::test]
async fn a_discount_deleted_in_the_same_second_stays_deleted() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let discount = fixture("discount");
    let mut gone = discount.clone();
    gone["deleted"] = json!(true);
    let deleted = event(1, "customer.discount.deleted", &gone, now);
    let (status, answer) = app.deliver(APP, &deleted).await;
    assert_eq!((status, answer["action"].as_str()), (200, Some("applied")));
    // An update of the same second arriving later cannot bring it back, and asks Stripe nothing.
    let mut updated = discount.clone();
    updated["end"] = json!(now + 86_400);
    let (status, answer) = app
        .deliver(APP, &event(2, "customer.discount.updated", &updated, now))
        .await;
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("stale")),
        "{answer}"
    );
    let id = discount["id"].as_str().unwrap();
    assert!(app.row(APP, "stripe_discount", id).await.unwrap().1);
    assert_eq!(app.fake().requests(), 0);
    app.stop().await;
}

/// The live lines of an invoice, through its view.
async fn invoice_lines(app: &TestApp, invoice: &str) -> i64 {
    app.db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.stripe_invoice_line_items WHERE invoice_id = $1",
            &[&invoice],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_truncated_invoice_event_brings_every_line_and_lines_that_left_are_tombstoned() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(StripeData::generate(&Counts::everything()))
    })
    .await;
    let fake = app.fake();
    let long = fake
        .ids("invoice")
        .into_iter()
        .find(|id| fake.get("invoice", id).unwrap()["lines"]["has_more"] == json!(true))
        .expect("a long invoice");
    let all = fake.get("invoice", &long).unwrap()["lines"]["total_count"]
        .as_i64()
        .unwrap();

    // The event embeds 10 lines of 40: the invoice is fetched, and its lines listed in full.
    fake.update("invoice", &long, |i| {
        i["metadata"] = json!({"note": "reminded"})
    });
    let event = fake.last_event().unwrap();
    assert_eq!(event["data"]["object"]["lines"]["has_more"], true);
    let (status, answer) = app.deliver(APP, &event).await;
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    assert_eq!(invoice_lines(&app, &long).await, all);
    assert!(fake.requests_to(&format!("/v1/invoices/{long}/lines")) >= 1);

    // Five lines left: the event embeds the whole list now, and the others are tombstoned.
    let kept: Vec<Value> = fake.get("invoice", &long).unwrap()["lines"]["data"]
        .as_array()
        .unwrap()[..5]
        .to_vec();
    fake.set_children("invoice", &long, kept);
    let event = fake.last_event().unwrap();
    assert_eq!(event["data"]["object"]["lines"]["has_more"], false);
    let (status, answer) = app.deliver(APP, &event).await;
    assert_eq!(
        (status, answer["action"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    assert_eq!(invoice_lines(&app, &long).await, 5);
    let tombstoned: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.entities WHERE collection_key = 'stripe_invoice_line_item'
                AND raw_payload ->> 'invoice' = $1 AND deleted_at IS NOT NULL",
            &[&long],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tombstoned, all - 5);
    app.stop().await;
}

#[tokio::test]
async fn an_archived_object_stays_in_its_view_with_archived_at() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    for (n, row) in TABLE.iter().filter(|r| r.archivable).enumerate() {
        let mut object = fixture(row.object);
        object["active"] = json!(false);
        let t = row
            .events
            .iter()
            .find(|t| t.ends_with(".updated"))
            .expect("an update type");
        let (status, answer) = app.deliver(APP, &event(100 + n, t, &object, now)).await;
        assert_eq!(
            (status, answer["action"].as_str()),
            (200, Some("applied")),
            "{t}"
        );
        let archived: bool = app
            .db()
            .await
            .query_one(
                &format!(
                    "SELECT archived_at IS NOT NULL FROM {} WHERE external_id = $1",
                    view_of(row.collection_key)
                ),
                &[&object["id"].as_str().unwrap()],
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", row.name))
            .get(0);
        assert!(archived, "{}", row.name);
    }
    app.stop().await;
}
