//! The typed Stripe billing and payment views (migration V7), over payloads written straight into
//! `supasaasy.entities`: every view answers its fixture with typed columns and keeps the column
//! contract, fields Stripe moved between API versions read the same from either shape, tombstones
//! are hidden; `readme` runs the README's example queries.

mod readme;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::fixture;
use tokio_postgres::Client;

use crate::helpers::fresh_database;

const APP: &str = "stripe_test";
/// The version listings are fetched at; fixtures have the current shapes.
const CURRENT: &str = "2025-08-27.basil";
/// A version before basil, for payloads built in the older shapes.
const OLDER: &str = "2024-06-20";

/// The new views: the fixture each is tested with, its collection and the view.
const VIEWS: [(&str, &str, &str); 23] = [
    ("account", "stripe_account", "stripe_accounts"),
    ("invoice", "stripe_invoice", "stripe_invoices"),
    (
        "line_item",
        "stripe_invoice_line_item",
        "stripe_invoice_line_items",
    ),
    ("invoiceitem", "stripe_invoice_item", "stripe_invoice_items"),
    ("charge", "stripe_charge", "stripe_charges"),
    (
        "payment_intent",
        "stripe_payment_intent",
        "stripe_payment_intents",
    ),
    ("refund", "stripe_refund", "stripe_refunds"),
    ("dispute", "stripe_dispute", "stripe_disputes"),
    ("credit_note", "stripe_credit_note", "stripe_credit_notes"),
    (
        "credit_note_line_item",
        "stripe_credit_note_line_item",
        "stripe_credit_note_line_items",
    ),
    ("coupon", "stripe_coupon", "stripe_coupons"),
    (
        "promotion_code",
        "stripe_promotion_code",
        "stripe_promotion_codes",
    ),
    ("discount", "stripe_discount", "stripe_discounts"),
    ("tax_rate", "stripe_tax_rate", "stripe_tax_rates"),
    ("tax_id", "stripe_tax_id", "stripe_tax_ids"),
    (
        "payment_method",
        "stripe_payment_method",
        "stripe_payment_methods",
    ),
    (
        "setup_intent",
        "stripe_setup_intent",
        "stripe_setup_intents",
    ),
    (
        "subscription_schedule",
        "stripe_subscription_schedule",
        "stripe_subscription_schedules",
    ),
    (
        "checkout.session",
        "stripe_checkout_session",
        "stripe_checkout_sessions",
    ),
    ("payout", "stripe_payout", "stripe_payouts"),
    (
        "balance_transaction",
        "stripe_balance_transaction",
        "stripe_balance_transactions",
    ),
    (
        "radar.early_fraud_warning",
        "stripe_early_fraud_warning",
        "stripe_early_fraud_warnings",
    ),
    ("review", "stripe_review", "stripe_reviews"),
];

/// A fresh migrated database, its session in UTC so times read the same everywhere.
async fn database() -> Client {
    let db = supasaasy::db::connect(&fresh_database().await)
        .await
        .expect("connecting to the test database");
    db.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
    db
}

/// A fixture as the mirror holds it: credit note lines carry the `credit_note` the daemon adds.
fn payload(resource: &str) -> Value {
    let mut object = fixture(resource);
    if resource == "credit_note_line_item" {
        object["credit_note"] = fixture("credit_note")["id"].clone();
    }
    object
}

/// A fixture with another id.
fn with_id(resource: &str, id: &str) -> Value {
    let mut object = payload(resource);
    object["id"] = json!(id);
    object
}

/// Drops fields a payload of some API version does not have.
fn without(mut object: Value, fields: &[&str]) -> Value {
    let map = object.as_object_mut().expect("a JSON object");
    for field in fields {
        map.remove(*field);
    }
    object
}

/// Writes one object the way the mirror keys it, by its id.
async fn put(db: &Client, collection: &str, object: &Value, api_version: &str) {
    let id = object["id"].as_str().expect("an object with an id");
    db.execute(
        "INSERT INTO supasaasy.entities (app_key, collection_key, external_id, raw_payload,
             api_version, source_updated_at)
         VALUES ($1, $2, $3, $4, $5, now())",
        &[&APP, &collection, &id, object, &api_version],
    )
    .await
    .unwrap();
}

/// One row of a view as a JSON object of its columns; `None` when the view does not show it.
async fn row(db: &Client, view: &str, id: &str) -> Option<Value> {
    db.query_opt(
        &format!(
            "SELECT to_jsonb(v) FROM supasaasy.{view} v WHERE app_key = $1 AND external_id = $2"
        ),
        &[&APP, &id],
    )
    .await
    .unwrap()
    .map(|r| r.get(0))
}

async fn shown(db: &Client, view: &str, id: &str) -> Value {
    row(db, view, id)
        .await
        .unwrap_or_else(|| panic!("{view} shows no row {id}"))
}

#[tokio::test]
async fn every_view_answers_its_fixture() {
    let db = database().await;
    for (resource, collection, _) in VIEWS {
        put(&db, collection, &payload(resource), CURRENT).await;
    }
    for (resource, _, view) in VIEWS {
        let object = payload(resource);
        let id = object["id"].as_str().unwrap();
        let got = shown(&db, view, id).await;
        assert_eq!(got["app_key"], APP, "{view}");
        assert_eq!(got["external_id"], id, "{view}");
        assert_eq!(got["raw_payload"], object, "{view}");
        assert_eq!(got["api_version"], CURRENT, "{view}");
    }

    let cus = "cus_QXg1o8vcGmoR32";
    let charge = "ch_1PgafuB7WZ01zgkWXYmPNZs8";
    let created = "2009-02-13T23:31:30+00:00";
    let expected: [(&str, &str, Value); 23] = [
        (
            "stripe_accounts",
            "acct_1PgafTB7WZ01zgkW",
            json!({"type": "standard", "controller_type": "account", "email": "site@stripe.com",
                   "country": "US", "default_currency": "usd", "charges_enabled": false,
                   "details_submitted": false, "disabled_reason": "requirements.past_due",
                   "business_name": null, "deauthorized_at": null, "account_id": "",
                   "created": created}),
        ),
        (
            "stripe_invoices",
            "in_1Pgc6tB7WZ01zgkWu9fdqL6I",
            json!({"status": "draft", "currency": "usd", "amount_due": 1000, "amount_paid": 0,
                   "amount_remaining": 1000, "total": 1000, "customer_id": cus,
                   "subscription_id": "subscription", "billing_reason": "manual",
                   "collection_method": "charge_automatically", "due_date": created,
                   "paid_at": null, "livemode": false, "metadata": {}, "created": created}),
        ),
        (
            "stripe_invoice_line_items",
            "il_tmp_1Pgc6sB7WZ01zgkWrG16hkdl",
            json!({"invoice_id": "in_1Pgc6tB7WZ01zgkWu9fdqL6I", "amount": 1000, "currency": "usd",
                   "quantity": 1, "proration": true, "parent_type": "invoice_item_details",
                   "invoice_item_id": "invoice_item", "period_start": "2024-07-26T00:34:14+00:00"}),
        ),
        (
            "stripe_invoice_items",
            "ii_1Pgc6sB7WZ01zgkWrG16hkdl",
            json!({"customer_id": cus, "subscription_id": "subscription", "invoice_id": null,
                   "amount": 1000, "proration": false, "date": created}),
        ),
        (
            "stripe_charges",
            charge,
            json!({"status": "succeeded", "amount": 100, "paid": true, "captured": false,
                   "balance_transaction_id": "txn_1PgaxNB7WZ01zgkWEV3TLf40",
                   "payment_method_id": "card_1PgaftB7WZ01zgkWm3waTcFp", "card_brand": "visa",
                   "card_last4": "4242", "created": created}),
        ),
        (
            "stripe_payment_intents",
            "pi_1PgafyB7WZ01zgkWSjxsAJo3",
            json!({"status": "requires_payment_method", "amount": 1099, "currency": "usd",
                   "last_payment_error_type": "idempotency_error", "canceled_at": created}),
        ),
        (
            "stripe_refunds",
            "re_1Pgc72B7WZ01zgkWqPvrRrPE",
            json!({"status": "succeeded", "amount": 100, "charge_id": charge}),
        ),
        (
            "stripe_disputes",
            "dp_1Pgc71B7WZ01zgkWMevJiAUx",
            json!({"status": "warning_needs_response", "reason": "general", "amount": 1000,
                   "charge_id": charge, "evidence_due_by": "2024-08-14T23:59:59+00:00"}),
        ),
        (
            "stripe_credit_notes",
            "cn_1Pgc75B7WZ01zgkWJMPt5riP",
            json!({"number": "ABCD-1234-CN-01", "status": "issued", "total": 1690,
                   "customer_id": cus, "invoice_id": "in_1Pgc75B7WZ01zgkWYv4iMwt7",
                   "refund_id": "refund"}),
        ),
        (
            "stripe_credit_note_line_items",
            "cnli_1Pgc75B7WZ01zgkWPb1sOn7l",
            json!({"credit_note_id": "cn_1Pgc75B7WZ01zgkWJMPt5riP", "currency": "usd",
                   "amount": 1000, "invoice_line_item_id": "il_1Pgc75B7WZ01zgkWOwaRplc5",
                   "type": "invoice_line_item"}),
        ),
        (
            "stripe_coupons",
            "Z4OV52SU",
            json!({"duration": "forever", "percent_off": 25.5, "amount_off": null,
                   "valid": true, "redeem_by": created}),
        ),
        (
            "stripe_promotion_codes",
            "promo_1Pgc79B7WZ01zgkWNy4mn5NX",
            json!({"code": "FALL20", "active": false, "expires_at": created, "archived_at": null}),
        ),
        (
            "stripe_discounts",
            "di_1Pgc6rB7WZ01zgkW7Al8Fal9",
            json!({"customer_id": cus, "starts_at": created, "ends_at": created}),
        ),
        (
            "stripe_tax_rates",
            "txr_1Pgc7BB7WZ01zgkW4Iwwvf6z",
            json!({"display_name": "VAT", "percentage": 19, "inclusive": false, "active": true,
                   "country": "DE", "archived_at": null}),
        ),
        (
            "stripe_tax_ids",
            "txi_1Pgc6sB7WZ01zgkWXkvC78jZ",
            json!({"type": "eu_vat", "value": "DE123456789", "customer_id": cus,
                   "verification_status": "pending"}),
        ),
        (
            "stripe_payment_methods",
            "pm_1Pgc75B7WZ01zgkWlHVgdEGJ",
            json!({"type": "card", "card_brand": "visa", "card_last4": "4242",
                   "card_exp_year": 2030, "billing_email": "jenny@example.com"}),
        ),
        (
            "stripe_setup_intents",
            "seti_1Pgag7B7WZ01zgkWSgwGdb8Z",
            json!({"status": "requires_payment_method", "usage": "off_session"}),
        ),
        (
            "stripe_subscription_schedules",
            "sub_sched_1Pgc7AB7WZ01zgkWaeHcsbnC",
            json!({"status": "not_started", "customer_id": cus, "phase_count": 1,
                   "current_phase_end": "2024-08-31T01:23:30+00:00"}),
        ),
        (
            "stripe_checkout_sessions",
            "cs_test_a1YS1URlnyQCN5fUUduORoQ7Pw41PJqDWkIVQCpJPqkfIhd6tVY8XB1OLY",
            json!({"mode": "payment", "status": "open", "payment_status": "unpaid",
                   "payment_intent_id": "pi_1PgafyB7WZ01zgkWSjxsAJo3",
                   "customer_email": "example@example.com"}),
        ),
        (
            "stripe_payouts",
            "po_1Pgc79B7WZ01zgkWu1KToYf4",
            json!({"status": "in_transit", "amount": 1100, "automatic": true,
                   "destination_id": "ba_1Pgc79B7WZ01zgkWoU5vBiXt", "arrival_date": created}),
        ),
        (
            "stripe_balance_transactions",
            "txn_1PgaxNB7WZ01zgkWEV3TLf40",
            json!({"type": "charge", "amount": 100, "fee": 0, "net": 100, "source_id": charge,
                   "available_on": created}),
        ),
        (
            "stripe_early_fraud_warnings",
            "issfr_1Pgc79B7WZ01zgkWxwDzEIPX",
            json!({"fraud_type": "misc", "actionable": true, "charge_id": "ch_1234"}),
        ),
        (
            "stripe_reviews",
            "prv_1Pgc79B7WZ01zgkWT6khp5C3",
            json!({"open": true, "opened_reason": "rule", "charge_id": charge}),
        ),
    ];
    for (view, id, columns) in expected {
        let got = shown(&db, view, id).await;
        for (column, want) in columns.as_object().unwrap() {
            assert_eq!(&got[column], want, "{view}.{column}");
        }
    }

    // Amounts come out as i64 and times as timestamptz.
    let typed = db
        .query_one(
            "SELECT amount_due, total, due_date, paid_at FROM supasaasy.stripe_invoices
              WHERE external_id = 'in_1Pgc6tB7WZ01zgkWu9fdqL6I'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(typed.get::<_, i64>("amount_due"), 1000);
    assert_eq!(typed.get::<_, i64>("total"), 1000);
    assert_eq!(
        typed.get::<_, DateTime<Utc>>("due_date"),
        Utc.timestamp_opt(1_234_567_890, 0).unwrap()
    );
    assert_eq!(typed.get::<_, Option<DateTime<Utc>>>("paid_at"), None);
}

/// The types a column's name promises.
fn expected_type(column: &str) -> Option<&'static str> {
    const AMOUNTS: [&str; 12] = [
        "amount",
        "subtotal",
        "subtotal_excluding_tax",
        "total",
        "total_excluding_tax",
        "tax",
        "fee",
        "net",
        "starting_balance",
        "ending_balance",
        "unit_amount",
        "amount_off",
    ];
    const TIMES: [&str; 13] = [
        "created",
        "date",
        "due_date",
        "period_start",
        "period_end",
        "next_payment_attempt",
        "redeem_by",
        "arrival_date",
        "available_on",
        "evidence_due_by",
        "current_phase_start",
        "current_phase_end",
        "expires_at",
    ];
    const BOOLEANS: [&str; 14] = [
        "livemode",
        "paid",
        "captured",
        "refunded",
        "disputed",
        "proration",
        "discountable",
        "active",
        "valid",
        "inclusive",
        "automatic",
        "actionable",
        "open",
        "attempted",
    ];
    let text = column.ends_with("_id")
        || column.ends_with("_currency")
        || column.ends_with("_status")
        || column == "currency"
        || column == "status";
    if text {
        Some("text")
    } else if column == "metadata" || column == "raw_payload" {
        Some("jsonb")
    } else if AMOUNTS.contains(&column)
        || column.starts_with("amount_")
        || column.ends_with("_amount")
    {
        Some("bigint")
    } else if TIMES.contains(&column) || column.ends_with("_at") {
        Some("timestamp with time zone")
    } else if BOOLEANS.contains(&column) {
        Some("boolean")
    } else {
        None
    }
}

#[tokio::test]
async fn views_keep_the_column_contract() {
    let db = database().await;
    for (_, _, view) in VIEWS {
        let columns: Vec<(String, String)> = db
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns
                  WHERE table_schema = 'supasaasy' AND table_name = $1 ORDER BY ordinal_position",
                &[&view],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[..2], ["app_key", "external_id"], "{view}");
        let archivable = matches!(view, "stripe_promotion_codes" | "stripe_tax_rates");
        let tail: &[&str] = if archivable {
            &[
                "raw_payload",
                "api_version",
                "archived_at",
                "created_at",
                "updated_at",
            ]
        } else {
            &["raw_payload", "api_version", "created_at", "updated_at"]
        };
        // Stripe views end with the account the row belongs to (Connect).
        let names = match names.split_last() {
            Some((&"account_id", rest)) if view.starts_with("stripe_") => rest.to_vec(),
            _ => panic!("{view} does not end with account_id: {names:?}"),
        };
        assert_eq!(names[names.len() - tail.len()..], *tail, "{view}");
        assert!(names.len() > tail.len() + 4, "{view} has few typed columns");
        for (name, data_type) in &columns {
            assert_ne!(data_type, "USER-DEFINED", "{view}.{name}");
            if let Some(want) = expected_type(name) {
                assert_eq!(data_type, want, "{view}.{name}");
            }
        }
    }
}

/// An InvoicePayment of an invoice's expanded `payments` (basil).
fn invoice_payment(id: &str, is_default: Option<bool>, status: &str, payment: Value) -> Value {
    let mut object = fixture("invoice_payment");
    object["id"] = json!(id);
    object["status"] = json!(status);
    object["payment"] = payment;
    match is_default {
        Some(default) => object["is_default"] = json!(default),
        None => object = without(object, &["is_default"]),
    }
    object
}

#[tokio::test]
async fn invoice_reads_both_api_shapes() {
    let db = database().await;
    let pi = |id: Value| json!({"type": "payment_intent", "payment_intent": id});

    // basil: the subscription under parent, the payments listed, taxes itemised.
    let mut basil = without(with_id("invoice", "in_basil"), &["subscription"]);
    basil["parent"] = json!({"type": "subscription_details", "quote_details": null,
                             "subscription_details": {"subscription": "sub_123", "metadata": {}}});
    basil["payments"] = json!({"object": "list", "has_more": false, "data": [
        invoice_payment("inpay_1", Some(false), "canceled", pi(json!("pi_abandoned"))),
        invoice_payment("inpay_2", Some(true), "paid", pi(json!("pi_123"))),
    ]});
    basil["total_taxes"] = json!([{"amount": 50, "tax_behavior": "exclusive"},
                                  {"amount": 30, "tax_behavior": "exclusive"}]);
    put(&db, "stripe_invoice", &basil, CURRENT).await;

    // basil without is_default: the first paid payment; a charge payment gives the charge; ids
    // expanded into objects.
    let mut by_charge = without(with_id("invoice", "in_basil_charge"), &["subscription"]);
    by_charge["parent"] = json!({"type": "subscription_details",
                                 "subscription_details": {"subscription": {"id": "sub_123", "object": "subscription"}}});
    by_charge["payments"] = json!({"data": [
        invoice_payment("inpay_3", None, "paid", json!({"type": "charge", "charge": "ch_123"})),
        invoice_payment("inpay_4", None, "canceled", pi(json!("pi_abandoned"))),
        invoice_payment("inpay_5", None, "paid", pi(json!({"id": "pi_123", "object": "payment_intent"}))),
    ]});
    put(&db, "stripe_invoice", &by_charge, CURRENT).await;

    // Older versions: top-level subscription, payment_intent, charge and tax.
    let mut older = without(
        with_id("invoice", "in_older"),
        &["parent", "total_taxes", "total_pretax_credit_amounts"],
    );
    older["subscription"] = json!("sub_123");
    older["payment_intent"] = json!("pi_123");
    older["charge"] = json!("ch_123");
    older["tax"] = json!(80);
    put(&db, "stripe_invoice", &older, OLDER).await;

    let mut expanded = without(with_id("invoice", "in_older_expanded"), &["parent"]);
    expanded["subscription"] = json!({"id": "sub_123", "object": "subscription"});
    expanded["payment_intent"] = json!({"id": "pi_123", "object": "payment_intent"});
    expanded["charge"] = json!({"id": "ch_123", "object": "charge"});
    expanded["customer"] = json!({"id": "cus_QXg1o8vcGmoR32", "object": "customer"});
    put(&db, "stripe_invoice", &expanded, OLDER).await;

    for id in [
        "in_basil",
        "in_basil_charge",
        "in_older",
        "in_older_expanded",
    ] {
        let got = shown(&db, "stripe_invoices", id).await;
        assert_eq!(got["subscription_id"], "sub_123", "{id}");
        assert_eq!(got["payment_intent_id"], "pi_123", "{id}");
        assert_eq!(got["customer_id"], "cus_QXg1o8vcGmoR32", "{id}");
    }
    for id in ["in_basil_charge", "in_older", "in_older_expanded"] {
        assert_eq!(
            shown(&db, "stripe_invoices", id).await["charge_id"],
            "ch_123",
            "{id}"
        );
    }
    assert_eq!(
        shown(&db, "stripe_invoices", "in_basil").await["charge_id"],
        Value::Null
    );
    for id in ["in_basil", "in_older"] {
        assert_eq!(shown(&db, "stripe_invoices", id).await["tax"], 80, "{id}");
    }
}

#[tokio::test]
async fn line_items_and_invoice_items_read_both_api_shapes() {
    let db = database().await;
    let mut price = with_id("price", "price_123");
    price["product"] = json!("prod_123");
    price["unit_amount_decimal"] = json!("1000");
    let pricing = json!({"type": "price_details", "unit_amount_decimal": "1000",
                         "price_details": {"price": "price_123", "product": "prod_123"}});

    // A subscription's line and an invoice item's line, each in both shapes.
    let mut basil_sub = without(with_id("line_item", "il_basil_sub"), &["subscription"]);
    basil_sub["parent"] = json!({"type": "subscription_item_details", "invoice_item_details": null,
        "subscription_item_details": {"invoice_item": null, "proration": true, "proration_details": null,
                                      "subscription": "sub_123", "subscription_item": "si_123"}});
    basil_sub["pricing"] = pricing.clone();
    let mut older_sub = without(with_id("line_item", "il_older_sub"), &["parent", "pricing"]);
    older_sub["type"] = json!("subscription");
    older_sub["subscription"] = json!("sub_123");
    older_sub["subscription_item"] = json!("si_123");
    older_sub["proration"] = json!(true);
    older_sub["price"] = price.clone();

    let mut basil_ii = without(with_id("line_item", "il_basil_ii"), &["subscription"]);
    basil_ii["parent"] = json!({"type": "invoice_item_details", "subscription_item_details": null,
        "invoice_item_details": {"invoice_item": "ii_123", "proration": false, "proration_details": null,
                                 "subscription": "sub_123"}});
    basil_ii["pricing"] = pricing.clone();
    let mut older_ii = without(with_id("line_item", "il_older_ii"), &["parent", "pricing"]);
    older_ii["type"] = json!("invoiceitem");
    older_ii["invoice_item"] = json!("ii_123");
    older_ii["subscription"] = json!({"id": "sub_123", "object": "subscription"});
    older_ii["proration"] = json!(false);
    older_ii["price"] = price.clone();

    for (object, version) in [
        (&basil_sub, CURRENT),
        (&older_sub, OLDER),
        (&basil_ii, CURRENT),
        (&older_ii, OLDER),
    ] {
        put(&db, "stripe_invoice_line_item", object, version).await;
    }
    let columns = [
        "invoice_id",
        "parent_type",
        "price_id",
        "product_id",
        "subscription_id",
        "subscription_item_id",
        "invoice_item_id",
        "proration",
        "unit_amount_decimal",
        "period_start",
    ];
    for (basil, older) in [
        ("il_basil_sub", "il_older_sub"),
        ("il_basil_ii", "il_older_ii"),
    ] {
        let (b, o) = (
            shown(&db, "stripe_invoice_line_items", basil).await,
            shown(&db, "stripe_invoice_line_items", older).await,
        );
        for column in columns {
            assert_eq!(b[column], o[column], "{basil} and {older}: {column}");
        }
        assert_eq!(b["price_id"], "price_123");
        assert_eq!(b["product_id"], "prod_123");
        assert_eq!(b["subscription_id"], "sub_123");
        assert_eq!(b["unit_amount_decimal"], 1000);
    }
    let sub_line = shown(&db, "stripe_invoice_line_items", "il_basil_sub").await;
    assert_eq!(sub_line["parent_type"], "subscription_item_details");
    assert_eq!(sub_line["subscription_item_id"], "si_123");
    assert_eq!(sub_line["proration"], true);
    let ii_line = shown(&db, "stripe_invoice_line_items", "il_basil_ii").await;
    assert_eq!(ii_line["parent_type"], "invoice_item_details");
    assert_eq!(ii_line["invoice_item_id"], "ii_123");
    assert_eq!(ii_line["proration"], false);

    // Invoice items moved the same way.
    let mut basil_item = with_id("invoiceitem", "ii_basil");
    basil_item["parent"] = json!({"type": "subscription_details",
        "subscription_details": {"subscription": "sub_123", "subscription_item": "si_123"}});
    basil_item["pricing"] = pricing;
    let mut older_item = without(with_id("invoiceitem", "ii_older"), &["parent", "pricing"]);
    older_item["subscription"] = json!("sub_123");
    older_item["subscription_item"] = json!("si_123");
    older_item["price"] = price;
    older_item["unit_amount_decimal"] = json!("1000");
    put(&db, "stripe_invoice_item", &basil_item, CURRENT).await;
    put(&db, "stripe_invoice_item", &older_item, OLDER).await;
    let (b, o) = (
        shown(&db, "stripe_invoice_items", "ii_basil").await,
        shown(&db, "stripe_invoice_items", "ii_older").await,
    );
    for column in [
        "subscription_id",
        "subscription_item_id",
        "price_id",
        "product_id",
        "unit_amount_decimal",
    ] {
        assert_eq!(b[column], o[column], "invoice items: {column}");
    }
    assert_eq!(b["price_id"], "price_123");
    assert_eq!(b["subscription_item_id"], "si_123");
}

#[tokio::test]
async fn discounts_and_promotion_codes_read_the_coupon_in_both_shapes() {
    let db = database().await;
    let coupon = fixture("coupon");
    let coupon_id = coupon["id"].as_str().unwrap().to_owned();

    let mut by_id = with_id("discount", "di_source_id");
    by_id["source"] = json!({"type": "coupon", "coupon": coupon_id});
    let mut by_object = with_id("discount", "di_source_object");
    by_object["source"] = json!({"type": "coupon", "coupon": coupon});
    let mut older = without(with_id("discount", "di_older"), &["source"]);
    older["coupon"] = coupon.clone();
    older["promotion_code"] = json!({"id": "promo_123", "object": "promotion_code"});
    put(&db, "stripe_discount", &by_id, CURRENT).await;
    put(&db, "stripe_discount", &by_object, CURRENT).await;
    put(&db, "stripe_discount", &older, OLDER).await;
    for id in ["di_source_id", "di_source_object", "di_older"] {
        let got = shown(&db, "stripe_discounts", id).await;
        assert_eq!(got["coupon_id"], coupon_id.as_str(), "{id}");
    }
    assert_eq!(
        shown(&db, "stripe_discounts", "di_older").await["promotion_code_id"],
        "promo_123"
    );

    let mut promotion = with_id("promotion_code", "promo_new");
    promotion["promotion"] = json!({"type": "coupon", "coupon": coupon_id});
    let mut older_promotion = without(with_id("promotion_code", "promo_older"), &["promotion"]);
    older_promotion["coupon"] = coupon;
    put(&db, "stripe_promotion_code", &promotion, CURRENT).await;
    put(&db, "stripe_promotion_code", &older_promotion, OLDER).await;
    for id in ["promo_new", "promo_older"] {
        let got = shown(&db, "stripe_promotion_codes", id).await;
        assert_eq!(got["coupon_id"], coupon_id.as_str(), "{id}");
    }
}

#[tokio::test]
async fn tombstones_are_hidden_and_archived_rows_shown() {
    let db = database().await;
    for (resource, collection, _) in VIEWS {
        let live = payload(resource);
        let mut gone = live.clone();
        gone["id"] = json!(format!("{}_gone", live["id"].as_str().unwrap()));
        put(&db, collection, &live, CURRENT).await;
        put(&db, collection, &gone, CURRENT).await;
    }
    db.execute(
        "UPDATE supasaasy.entities SET deleted_at = now() WHERE external_id LIKE '%\\_gone'",
        &[],
    )
    .await
    .unwrap();
    for (resource, _, view) in VIEWS {
        let ids: Vec<String> = db
            .query(&format!("SELECT external_id FROM supasaasy.{view}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(ids, [payload(resource)["id"].as_str().unwrap()], "{view}");
    }

    // An archived promotion code or tax rate stays, with the time it was archived.
    db.execute(
        "UPDATE supasaasy.entities SET archived_at = to_timestamp(1700000000)
          WHERE collection_key IN ('stripe_promotion_code', 'stripe_tax_rate')",
        &[],
    )
    .await
    .unwrap();
    for view in ["stripe_promotion_codes", "stripe_tax_rates"] {
        let archived: Vec<DateTime<Utc>> = db
            .query(&format!("SELECT archived_at FROM supasaasy.{view}"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            archived,
            [Utc.timestamp_opt(1_700_000_000, 0).unwrap()],
            "{view}"
        );
    }
}
