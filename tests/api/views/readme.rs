//! The README's billing example queries (section "Billing and payments views"), read from the README
//! and run as written over a small book of subscriptions, invoices, refunds, disputes and failed
//! payments whose totals are known.

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use tokio_postgres::{Client, SimpleQueryMessage};

use super::{database, put, with_id, CURRENT};

/// The SQL examples of the README's billing section, each a block whose first line names it.
fn readme_example(name: &str) -> &'static str {
    const README: &str = include_str!("../../../README.md");
    let section = README
        .split("### Billing and payments views")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("the README has a billing views section");
    section
        .split("```sql\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .find(|block| block.lines().next() == Some(&format!("-- {name}")[..]))
        .unwrap_or_else(|| panic!("no README example {name:?}"))
}

/// Runs SQL as written and gives its rows as text, as psql would show them.
async fn run(db: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    db.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

fn text(rows: &[&[Option<&str>]]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|r| r.iter().map(|c| c.map(str::to_owned)).collect())
        .collect()
}

/// Unix seconds of a UTC time.
fn at(y: i32, m: u32, d: u32, h: u32) -> i64 {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap().timestamp()
}

#[tokio::test]
async fn readme_billing_examples() {
    let db = database().await;

    // Recurring revenue: an active subscription with monthly, yearly and quarterly prices; a
    // canceled one and a departed item do not count.
    let prices = [
        ("price_month", "usd", 2000, "month", 1),
        ("price_year", "usd", 24000, "year", 1),
        ("price_quarter", "eur", 3000, "month", 3),
    ];
    for (id, currency, unit_amount, interval, count) in prices {
        let mut price = with_id("price", id);
        price["currency"] = json!(currency);
        price["unit_amount"] = json!(unit_amount);
        price["recurring"]["interval"] = json!(interval);
        price["recurring"]["interval_count"] = json!(count);
        put(&db, "stripe_price", &price, CURRENT).await;
    }
    for (id, status) in [("sub_active", "active"), ("sub_canceled", "canceled")] {
        let mut subscription = with_id("subscription", id);
        subscription["status"] = json!(status);
        put(&db, "stripe_subscription", &subscription, CURRENT).await;
    }
    let items = [
        ("si_month", "sub_active", "price_month", 2),
        ("si_year", "sub_active", "price_year", 1),
        ("si_quarter", "sub_active", "price_quarter", 1),
        ("si_departed", "sub_active", "price_month", 10),
        ("si_canceled", "sub_canceled", "price_month", 5),
    ];
    for (id, subscription, price, quantity) in items {
        let mut item = with_id("subscription_item", id);
        item["subscription"] = json!(subscription);
        item["price"]["id"] = json!(price);
        item["quantity"] = json!(quantity);
        put(&db, "stripe_subscription_item", &item, CURRENT).await;
    }
    db.execute(
        "UPDATE supasaasy.entities SET deleted_at = now() WHERE external_id = 'si_departed'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        run(&db, readme_example("monthly recurring revenue")).await,
        text(&[&[Some("eur"), Some("1000")], &[Some("usd"), Some("6000")]])
    );

    // Revenue: paid invoices by the month they were paid in; an open one does not count.
    let invoices = [
        ("in_jan_1", "paid", "usd", 1000, Some(at(2024, 1, 10, 12))),
        ("in_jan_2", "paid", "usd", 2500, Some(at(2024, 1, 31, 23))),
        ("in_jan_eur", "paid", "eur", 700, Some(at(2024, 1, 15, 9))),
        ("in_feb", "paid", "usd", 500, Some(at(2024, 2, 1, 0))),
        ("in_open", "open", "usd", 0, None),
    ];
    for (id, status, currency, paid, paid_at) in invoices {
        let mut invoice = with_id("invoice", id);
        invoice["status"] = json!(status);
        invoice["currency"] = json!(currency);
        invoice["amount_paid"] = json!(paid);
        invoice["status_transitions"]["paid_at"] = json!(paid_at);
        put(&db, "stripe_invoice", &invoice, CURRENT).await;
    }
    assert_eq!(
        run(&db, readme_example("revenue by month")).await,
        text(&[
            &[
                Some("2024-01-01 00:00:00+00"),
                Some("eur"),
                Some("700"),
                Some("1")
            ],
            &[
                Some("2024-01-01 00:00:00+00"),
                Some("usd"),
                Some("3500"),
                Some("2")
            ],
            &[
                Some("2024-02-01 00:00:00+00"),
                Some("usd"),
                Some("500"),
                Some("1")
            ],
        ])
    );

    // Refunds that went through and disputes, by month; a failed refund does not count.
    let refunds = [
        ("re_jan", "succeeded", 100, at(2024, 1, 5, 0)),
        ("re_failed", "failed", 999, at(2024, 1, 6, 0)),
        ("re_feb", "succeeded", 50, at(2024, 2, 3, 0)),
    ];
    for (id, status, amount, created) in refunds {
        let mut refund = with_id("refund", id);
        refund["status"] = json!(status);
        refund["amount"] = json!(amount);
        refund["created"] = json!(created);
        put(&db, "stripe_refund", &refund, CURRENT).await;
    }
    let disputes = [
        ("dp_lost", "lost", 1000, at(2024, 1, 20, 0)),
        ("dp_open", "needs_response", 300, at(2024, 1, 21, 0)),
    ];
    for (id, status, amount, created) in disputes {
        let mut dispute = with_id("dispute", id);
        dispute["status"] = json!(status);
        dispute["amount"] = json!(amount);
        dispute["created"] = json!(created);
        put(&db, "stripe_dispute", &dispute, CURRENT).await;
    }
    assert_eq!(
        run(&db, readme_example("refunds and disputes by month")).await,
        text(&[
            &[
                Some("2024-01-01 00:00:00+00"),
                Some("usd"),
                Some("100"),
                Some("1300"),
                Some("1000")
            ],
            &[
                Some("2024-02-01 00:00:00+00"),
                Some("usd"),
                Some("50"),
                None,
                None
            ],
        ])
    );

    // Failed payments of the last day: a declined intent and a failed charge; a succeeded intent,
    // a succeeded charge and last year's failures do not count.
    let now = Utc::now().timestamp();
    let declined = json!({"type": "card_error", "code": "card_declined",
                          "message": "Your card was declined."});
    let intents = [
        (
            "pi_declined",
            "requires_payment_method",
            declined.clone(),
            now - 3600,
        ),
        ("pi_paid", "succeeded", Value::Null, now - 60),
        (
            "pi_last_year",
            "requires_payment_method",
            declined,
            now - 366 * 86_400,
        ),
    ];
    for (id, status, error, created) in intents {
        let mut intent = with_id("payment_intent", id);
        intent["status"] = json!(status);
        intent["last_payment_error"] = error;
        intent["created"] = json!(created);
        put(&db, "stripe_payment_intent", &intent, CURRENT).await;
    }
    let charges = [
        ("ch_failed", "failed", Some("card_declined"), now - 1800),
        ("ch_paid", "succeeded", None, now - 1800),
        (
            "ch_last_year",
            "failed",
            Some("card_declined"),
            now - 366 * 86_400,
        ),
    ];
    for (id, status, code, created) in charges {
        let mut charge = with_id("charge", id);
        charge["status"] = json!(status);
        charge["failure_code"] = json!(code);
        charge["created"] = json!(created);
        put(&db, "stripe_charge", &charge, CURRENT).await;
    }
    let failed: Vec<Vec<Option<String>>> =
        run(&db, readme_example("failed payments in the last day"))
            .await
            .into_iter()
            .map(|row| row[..2].iter().chain(&row[6..7]).cloned().collect())
            .collect();
    assert_eq!(
        failed,
        text(&[
            &[Some("charge"), Some("ch_failed"), Some("card_declined")],
            &[
                Some("payment_intent"),
                Some("pi_declined"),
                Some("card_declined")
            ],
        ])
    );
}

/// A row of a Connect platform's mirror, in `account`.
async fn put_in(db: &Client, account: &str, collection: &str, object: &Value) {
    db.execute(
        "INSERT INTO supasaasy.entities (app_key, account_id, collection_key, external_id,
             raw_payload, api_version, source_updated_at)
         VALUES ('platform', $1, $2, $3, $4, $5, now())",
        &[
            &account,
            &collection,
            &object["id"].as_str().unwrap(),
            object,
            &CURRENT,
        ],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn readme_connect_examples() {
    let db = database().await;
    let (tenant, other) = ("acct_1Tenant", "acct_2Other");
    for (account, name) in [(tenant, "Tenant"), (other, "Other")] {
        let mut a = with_id("account", account);
        a["business_profile"]["name"] = json!(name);
        put_in(&db, "acct_platform", "stripe_account", &a).await;
    }
    // The same customer and subscription ids in both tenants.
    for (account, email) in [(tenant, "a@tenant.example"), (other, "b@other.example")] {
        let mut c = with_id("customer", "cus_1");
        c["email"] = json!(email);
        put_in(&db, account, "stripe_customer", &c).await;
        let mut s = with_id("subscription", "sub_1");
        s["customer"] = json!("cus_1");
        s["status"] = json!("active");
        put_in(&db, account, "stripe_subscription", &s).await;
    }
    let now = Utc::now().timestamp();
    let invoices = [
        (tenant, "in_1", 1000, now),
        (tenant, "in_2", 500, now - 400 * 86_400),
        (other, "in_1", 2500, now),
    ];
    for (account, id, paid, created) in invoices {
        let mut i = with_id("invoice", id);
        i["status"] = json!("paid");
        i["amount_paid"] = json!(paid);
        i["currency"] = json!("usd");
        i["created"] = json!(created);
        put_in(&db, account, "stripe_invoice", &i).await;
    }

    let sql = readme_example("one tenant's active subscriptions");
    assert_eq!(
        run(&db, sql).await,
        text(&[&[Some("sub_1"), Some("active"), Some("a@tenant.example")]])
    );
    let sql = readme_example("paid revenue per tenant this month, with the tenant's name");
    assert_eq!(
        run(&db, sql).await,
        text(&[
            &[Some("Tenant"), Some(tenant), Some("usd"), Some("1000")],
            &[Some("Other"), Some(other), Some("usd"), Some("2500")],
        ])
    );
}
