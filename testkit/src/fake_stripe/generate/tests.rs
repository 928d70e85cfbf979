//! The generated data holds together: counts, references, statuses, fixture shapes.

use super::super::data::fixture;
use super::*;
use serde_json::Value;
use std::collections::HashSet;
use supasaasy_stripe::resources::TABLE;

#[test]
fn generation_is_deterministic_and_consistent() {
    let counts = Counts {
        customers: 30,
        products: 3,
        prices_per_product: 4,
        subscriptions: 20,
        items_per_subscription: 3,
        canceled_every: 5,
        ..Counts::default()
    };
    let a = StripeData::generate_at(&counts, 1_700_000_000);
    let b = StripeData::generate_at(&counts, 1_700_000_000);
    assert_eq!(a.ids("subscription"), b.ids("subscription"));
    assert_eq!(
        a.get("customer", &a.ids("customer")[3]),
        b.get("customer", &b.ids("customer")[3])
    );
    assert_eq!(a.count("customer"), 30);
    assert_eq!(a.count("price"), 12);
    assert_eq!(a.count("plan"), 12);
    assert_eq!(a.count("subscription_item"), 60);
    for id in a.ids("plan") {
        let plan = a.get("plan", &id).unwrap();
        let price = a.get("price", &id).unwrap();
        assert_eq!(plan["product"], price["product"]);
        assert!(a
            .get("product", price["product"].as_str().unwrap())
            .is_some());
    }
    let mut canceled = 0;
    for id in a.ids("subscription") {
        let sub = a.get("subscription", &id).unwrap();
        assert!(a
            .get("customer", sub["customer"].as_str().unwrap())
            .is_some());
        canceled += usize::from(sub["status"] == "canceled");
        for item in sub["items"]["data"].as_array().unwrap() {
            assert_eq!(item["subscription"], sub["id"]);
            assert!(a
                .get("price", item["price"]["id"].as_str().unwrap())
                .is_some());
            assert!(item["current_period_end"].as_i64() > item["current_period_start"].as_i64());
        }
    }
    assert_eq!(canceled, 4);
    // Generated objects keep every field of Stripe's fixtures.
    for resource in ["customer", "product", "price", "plan", "subscription"] {
        let got = a.get(resource, &a.ids(resource)[0]).unwrap();
        for key in fixture(resource).as_object().unwrap().keys() {
            assert!(got.get(key).is_some(), "{resource} lacks {key}");
        }
    }
    let item = a
        .get("subscription_item", &a.ids("subscription_item")[0])
        .unwrap();
    for key in fixture("subscription_item").as_object().unwrap().keys() {
        assert!(item.get(key).is_some(), "subscription_item lacks {key}");
    }
    let created: HashSet<_> = a
        .ids("customer")
        .iter()
        .map(|id| a.get("customer", id).unwrap()["created"].as_i64().unwrap())
        .collect();
    assert_eq!(created.len(), 30);
}

/// Every object of a resource, as served.
fn all(data: &StripeData, resource: &str) -> Vec<Value> {
    let ids = data.ids(resource);
    ids.iter()
        .map(|id| data.get(resource, id).unwrap())
        .collect()
}

fn text<'a>(object: &'a Value, field: &str) -> &'a str {
    object[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} of {object}"))
}

#[test]
fn everything_has_every_resource_shaped_like_its_fixture() {
    let data = StripeData::generate_at(&Counts::everything(), 1_700_000_000);
    let prefixes = [
        ("invoice", "in_"),
        ("invoice_line_item", "il_"),
        ("charge", "ch_"),
        ("payment_intent", "pi_"),
        ("refund", "re_"),
        ("dispute", "dp_"),
        ("credit_note", "cn_"),
        ("credit_note_line_item", "cnli_"),
        ("tax_rate", "txr_"),
        ("tax_id", "txi_"),
        ("payment_method", "pm_"),
        ("setup_intent", "seti_"),
        ("subscription_schedule", "sub_sched_"),
        ("checkout_session", "cs_test_"),
        ("payout", "po_"),
        ("balance_transaction", "txn_"),
        ("early_fraud_warning", "issfr_"),
        ("review", "prv_"),
        ("promotion_code", "promo_"),
        ("discount", "di_"),
        ("invoice_item", "ii_"),
    ];
    for (resource, prefix) in prefixes {
        let ids = data.ids(resource);
        assert!(!ids.is_empty(), "{resource}");
        assert!(
            ids.iter().all(|id| id.starts_with(prefix)),
            "{resource}: {ids:?}"
        );
    }
    for coupon in data.ids("coupon") {
        assert!(
            coupon.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{coupon}"
        );
    }
    // Connected accounts are made by `with_connected_account`, not generated (see the connect tests).
    for row in TABLE.iter().filter(|r| !r.connected_accounts) {
        let objects = all(&data, row.name);
        assert!(!objects.is_empty(), "{}", row.name);
        let base = fixture(row.object);
        for object in &objects {
            assert_eq!(object["object"], row.object, "{}", row.name);
            for key in base.as_object().unwrap().keys() {
                assert!(object.get(key).is_some(), "{} lacks {key}", row.name);
            }
        }
        // Distinct times, newest first.
        let times: Vec<i64> = objects
            .iter()
            .filter_map(|o| o.get("created").or(o.get("date")).and_then(Value::as_i64))
            .collect();
        assert!(times.windows(2).all(|w| w[0] >= w[1]), "{}", row.name);
        let distinct: HashSet<_> = times.iter().collect();
        assert_eq!(distinct.len(), times.len(), "{}", row.name);
    }
    assert_eq!(data.count("customer"), 12);
    assert_eq!(data.count("invoice"), 10);
    assert_eq!(data.count("invoice_line_item"), 9 * 2 + 40);
    assert_eq!(data.count("charge"), 10);
    assert_eq!(data.count("payment_intent"), 12);
    assert_eq!(data.count("refund"), 3);
    assert_eq!(data.count("tax_rate"), 3);
    assert_eq!(data.count("credit_note_line_item"), 3 * 2);
    for resource in ["tax_id", "payment_method", "discount"] {
        assert_eq!(data.count(resource), 3, "{resource}");
    }
    let a = StripeData::generate_at(&Counts::everything(), 1_700_000_000);
    for row in TABLE {
        assert_eq!(all(&a, row.name), all(&data, row.name), "{}", row.name);
    }
}

#[test]
fn everything_refers_to_objects_of_the_data() {
    let data = StripeData::generate_at(&Counts::everything(), 1_700_000_000);
    let exists = |resource: &str, id: &str| data.get(resource, id).is_some();
    let mut statuses = HashSet::new();
    for invoice in all(&data, "invoice") {
        assert!(exists("customer", text(&invoice, "customer")));
        statuses.insert(text(&invoice, "status").to_owned());
        let id = text(&invoice, "id");
        let lines = &invoice["lines"];
        assert_eq!(lines["url"], format!("/v1/invoices/{id}/lines"));
        for line in lines["data"].as_array().unwrap() {
            assert_eq!(line["invoice"], id);
            let price = line["pricing"]["price_details"]["price"].as_str().unwrap();
            assert!(exists("price", price));
        }
    }
    assert_eq!(statuses, ["paid", "open", "void"].map(String::from).into());
    let long = all(&data, "invoice")
        .into_iter()
        .find(|i| i["lines"]["total_count"] == 40)
        .expect("a long invoice");
    assert_eq!(long["lines"]["has_more"], true);
    assert_eq!(long["lines"]["data"].as_array().unwrap().len(), 10);

    let mut intents = HashSet::new();
    for intent in all(&data, "payment_intent") {
        assert!(exists("customer", text(&intent, "customer")));
        intents.insert(text(&intent, "status").to_owned());
        match intent["latest_charge"].as_str() {
            Some(charge) => {
                let charge = data.get("charge", charge).unwrap();
                assert_eq!(charge["payment_intent"], intent["id"]);
                assert_eq!(charge["customer"], intent["customer"]);
                assert_eq!(intent["status"], "succeeded");
            }
            None => assert_eq!(intent["status"], "requires_payment_method"),
        }
    }
    assert_eq!(intents.len(), 2);
    for charge in all(&data, "charge") {
        assert!(exists("customer", text(&charge, "customer")));
        if let Some(intent) = charge["payment_intent"].as_str() {
            assert_eq!(
                data.get("payment_intent", intent).unwrap()["latest_charge"],
                charge["id"]
            );
        }
    }
    for refund in all(&data, "refund") {
        let charge = data.get("charge", text(&refund, "charge")).unwrap();
        assert_eq!(refund["payment_intent"], charge["payment_intent"]);
        assert!(charge["amount_refunded"].as_i64() > Some(0));
    }
    for resource in ["dispute", "review", "early_fraud_warning"] {
        for object in all(&data, resource) {
            assert!(exists("charge", text(&object, "charge")), "{resource}");
        }
    }
    for dispute in all(&data, "dispute") {
        let charge = data.get("charge", text(&dispute, "charge")).unwrap();
        assert_eq!(dispute["payment_intent"], charge["payment_intent"]);
    }
    let mut pending = 0;
    for txn in all(&data, "balance_transaction") {
        assert!(exists("charge", text(&txn, "source")));
        pending += usize::from(txn["status"] == "pending");
    }
    assert!(pending > 0);
    for note in all(&data, "credit_note") {
        let invoice = data.get("invoice", text(&note, "invoice")).unwrap();
        assert_eq!(note["customer"], invoice["customer"]);
        let lines = note["lines"]["data"].as_array().unwrap();
        assert_eq!(lines.len(), 2);
        for line in lines {
            assert!(line.get("credit_note").is_none(), "as Stripe sends it");
            assert!(exists("invoice_line_item", text(line, "invoice_line_item")));
        }
    }
    for promo in all(&data, "promotion_code") {
        assert!(exists(
            "coupon",
            promo["promotion"]["coupon"].as_str().unwrap()
        ));
    }
    for session in all(&data, "checkout_session") {
        let intent = data
            .get("payment_intent", text(&session, "payment_intent"))
            .unwrap();
        assert_eq!(session["customer"], intent["customer"]);
    }
    for intent in all(&data, "setup_intent") {
        assert!(text(&intent, "client_secret").starts_with(text(&intent, "id")));
    }
    for resource in ["tax_id", "payment_method", "discount"] {
        for object in all(&data, resource) {
            assert!(exists("customer", text(&object, "customer")), "{resource}");
        }
    }
    for discount in all(&data, "discount") {
        let customer = data.get("customer", text(&discount, "customer")).unwrap();
        assert_eq!(customer["discount"], discount);
        assert!(exists(
            "coupon",
            discount["source"]["coupon"].as_str().unwrap()
        ));
    }
    let discounted = all(&data, "customer")
        .iter()
        .filter(|c| !c["discount"].is_null())
        .count();
    assert_eq!(discounted, 3);
}

#[test]
fn the_default_counts_make_nothing_beyond_the_catalogue() {
    let data = StripeData::generate_at(&Counts::default(), 1_700_000_000);
    for row in TABLE {
        let made = ["customer", "product", "price", "plan", "subscription"].contains(&row.name);
        assert_eq!(data.count(row.name) > 0, made, "{}", row.name);
    }
}

/// The benchmark's size: run with `cargo test --release -- --ignored` to time it, next to the
/// customers alone.
#[test]
#[ignore]
fn generates_the_benchmarks_data_quickly() {
    let customers = Counts {
        customers: 100_000,
        ..Counts::default()
    };
    let counts = Counts {
        invoices: 20_000,
        lines_per_invoice: 2,
        long_invoice_every: 100,
        long_invoice_lines: 40,
        charges: 20_000,
        payment_intents: 20_000,
        refunds: 2_000,
        others: 100,
        ..customers
    };
    for counts in [customers, counts] {
        let began = std::time::Instant::now();
        let data = StripeData::generate_at(&counts, 1_700_000_000);
        let took = began.elapsed();
        assert_eq!(data.count("invoice"), counts.invoices);
        eprintln!("{counts:?}: generated in {took:?}");
    }
}

/// The benchmark's Connect platform: 50 connected accounts of 2,000 customers and one of
/// 100,000, each from its own seed. Run it with `--release --ignored` to compare with the
/// 100,000 customers of one account above: it should take about twice as long, no more.
#[test]
#[ignore]
fn generates_a_platforms_accounts_quickly() {
    let small = Counts {
        customers: 2_000,
        ..Counts::default()
    };
    let large = Counts {
        customers: 100_000,
        ..Counts::default()
    };
    let began = std::time::Instant::now();
    let mut data = StripeData::generate_at(&small, 1_700_000_000);
    for seed in 1..=50 {
        let account = StripeData::generate_seeded_at(&small, seed, 1_700_000_000);
        data = data.with_connected_account(&format!("acct_bench{seed:011}"), account);
    }
    let account = StripeData::generate_seeded_at(&large, 51, 1_700_000_000);
    data = data.with_connected_account("acct_benchlarge00000", account);
    eprintln!(
        "51 accounts, 202,000 customers: generated in {:?}",
        began.elapsed()
    );
    assert_eq!(data.connected_account_ids().len(), 51);
}

#[test]
fn seeds_give_accounts_their_own_ids() {
    let counts = Counts::everything();
    let at = 1_700_000_000;
    let plain = StripeData::generate_at(&counts, at);
    let zero = StripeData::generate_seeded_at(&counts, 0, at);
    let one = StripeData::generate_seeded_at(&counts, 1, at);
    let again = StripeData::generate_seeded_at(&counts, 1, at);
    let two = StripeData::generate_seeded_at(&counts, 2, at);
    let mut seen_one = HashSet::new();
    for kind in super::super::kinds::Kind::all() {
        let name = kind.name();
        assert_eq!(
            plain.ids(name),
            zero.ids(name),
            "seed 0 is generate: {name}"
        );
        assert_eq!(one.ids(name), again.ids(name), "a seed repeats: {name}");
        assert_eq!(one.count(name), plain.count(name), "{name}");
        seen_one.extend(one.ids(name));
    }
    for kind in super::super::kinds::Kind::all() {
        for id in two
            .ids(kind.name())
            .into_iter()
            .chain(plain.ids(kind.name()))
        {
            assert!(!seen_one.contains(&id), "{} {id} in two seeds", kind.name());
        }
    }
    assert!(plain.get("coupon", "SUMMER5").is_some());
    let tagged = |c: &String| c.starts_with("SUMMER5") && c.len() == "SUMMER5".len() + 4;
    assert!(
        one.ids("coupon").iter().any(tagged),
        "{:?}",
        one.ids("coupon")
    );
}
