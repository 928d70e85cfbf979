//! The resources there are few of: coupons, every other top-level row of the connector's table
//! (made from its fixture, whatever the row), and what customers hold (tax ids, payment methods).
//!
//! A generated object is its fixture with a fresh id of the fixture id's prefix (`txr_`,
//! `cs_test_`), its own `created` (an invoice item's `date`) and references that hold:
//! - a top-level field named after a resource of the table (`customer`, `charge`, `invoice`,
//!   `payment_intent`...) that holds an id in the fixture holds one of the data (`null` when
//!   there is none); `payment_intent` follows the `charge` (a dispute's is its charge's), and
//!   `customer` follows the charge, invoice or payment intent the object names;
//! - a top-level text that starts with the fixture's id (a `client_secret`) starts with the new id;
//! - a parent gets two children from the child's fixture;
//! - a few fields only one resource has are set by [`details`] (a balance transaction's `source`,
//!   a promotion code's coupon, the prices of an invoice item or a schedule's phase).

use serde_json::{json, Map, Value};
use supasaasy_stripe::resources::{Parent, StripeResource, TABLE};

use super::super::data::{fixture, fixture_ref};
use super::{row, set, spaced, spread, Gen, Ids, YEAR};

/// Top-level resources made by their own generators, with counts of their own.
const MADE_ELSEWHERE: &[&str] = &[
    "customer",
    "product",
    "price",
    "plan",
    "subscription",
    "invoice",
    "charge",
    "payment_intent",
    "refund",
    "coupon",
];

/// Children each generated parent gets (a credit note's lines).
const CHILDREN_EACH: usize = 2;

const COUPON_WORDS: [&str; 8] = [
    "SUMMER", "WINTER", "SPRING", "AUTUMN", "WELCOME", "LOYAL", "FRIENDS", "LAUNCH",
];

/// Coupons with human codes (`SUMMER25`), first: discounts and promotion codes name them.
pub(super) fn coupons(gen: &mut Gen, n: usize) {
    let mut rng = gen.stream(0x10);
    let base = fixture("coupon");
    let tag = gen.ids.tag();
    for k in 0..n {
        let word = COUPON_WORDS[k % COUPON_WORDS.len()];
        let percent = 5 * (1 + (k * 3) % 10);
        let id = match k / COUPON_WORDS.len() {
            0 => format!("{word}{percent}{tag}"),
            round => format!("{word}{percent}V{round}{tag}"),
        };
        let created = spread(&mut rng, k, n, gen.now - YEAR, YEAR);
        let mut coupon = base.clone();
        set(
            &mut coupon,
            json!({"id": id, "created": created, "name": format!("{percent}% off"),
                   "percent_off": percent, "amount_off": null, "duration": "once",
                   "duration_in_months": null, "redeem_by": null, "metadata": {}}),
        );
        gen.store.put(row("coupon"), &coupon, gen.now);
        gen.refs.add("coupon", &id);
    }
}

/// `n` objects of every top-level row no other generator makes, in the table's order (so a
/// later one can name an earlier one).
pub(super) fn remaining(gen: &mut Gen, n: usize) {
    for (i, resource) in TABLE.iter().enumerate() {
        // Connected accounts are the platform's accounts, not objects of an account's store.
        if resource.parent != Parent::None
            || resource.connected_accounts
            || MADE_ELSEWHERE.contains(&resource.name)
        {
            continue;
        }
        let Some(base) = fixture_ref(resource.object) else {
            continue;
        };
        let mut rng = gen.stream(0x100 + i as u64);
        let shape = IdShape::of(base);
        for k in 0..n {
            let id = shape.id(gen.ids, 0x600 + i as u64, k);
            let created = spread(&mut rng, k, n, gen.now - YEAR, YEAR);
            let mut object = fresh(base, &id, created);
            point(gen, &mut object, k);
            details(gen, resource, &mut object, k);
            gen.store.put(i, &object, gen.now);
            if resource.child.is_some() {
                let children = children(gen, resource, &object, k);
                gen.store.set_children(i, &id, children);
            }
            gen.refs.add(resource.name, &id);
        }
    }
}

/// One tax id, payment method (and any other resource listed per customer) for each of `n`
/// customers spread over the list.
pub(super) fn per_customer(gen: &mut Gen, n: usize) {
    let holders = n.min(gen.refs.customers.len());
    for (i, resource) in TABLE.iter().enumerate() {
        if resource.parent != Parent::Customer {
            continue;
        }
        let Some(base) = fixture_ref(resource.object) else {
            continue;
        };
        let shape = IdShape::of(base);
        for k in 0..holders {
            let (customer, since) =
                gen.refs.customers[spaced(k, holders, gen.refs.customers.len())].clone();
            let id = shape.id(gen.ids, 0x700 + i as u64, k);
            let mut object = fresh(base, &id, (since + 60).min(gen.now));
            set(&mut object, json!({"customer": customer.as_str()}));
            if let Some(owner) = object.get_mut("owner").and_then(Value::as_object_mut) {
                owner.insert("customer".into(), Value::from(customer.as_str()));
            }
            gen.store.put(i, &object, gen.now);
            gen.refs.add(resource.name, &id);
        }
    }
}

/// The shape of a fixture's id: its prefix (through the last `_`) and how long the rest is.
struct IdShape {
    prefix: String,
    len: usize,
}

impl IdShape {
    fn of(fixture: &Value) -> IdShape {
        let id = fixture.get("id").and_then(Value::as_str).unwrap_or("obj_");
        let cut = id.rfind('_').map_or(0, |i| i + 1);
        IdShape {
            prefix: id[..cut].to_owned(),
            len: (id.len() - cut).max(14),
        }
    }

    fn id(&self, ids: Ids, salt: u64, k: usize) -> String {
        ids.make(&self.prefix, self.len, salt, k as u64)
    }
}

/// The fixture as a new object: its id (and texts starting with the old one) and its time.
fn fresh(base: &Value, id: &str, created: i64) -> Value {
    let mut object = base.clone();
    let old = base.get("id").and_then(Value::as_str).unwrap_or_default();
    if let Some(map) = object.as_object_mut() {
        for value in map.values_mut() {
            let renamed = match value.as_str() {
                Some(text) if !old.is_empty() && text.starts_with(old) => {
                    Some(format!("{id}{}", &text[old.len()..]))
                }
                _ => None,
            };
            if let Some(renamed) = renamed {
                *value = Value::from(renamed);
            }
        }
        let time = if map.contains_key("created") || !map.contains_key("date") {
            "created"
        } else {
            "date"
        };
        map.insert(time.into(), Value::from(created));
        map.insert("id".into(), Value::from(id));
    }
    object
}

/// Points the object's references at objects of the data (see the module's rules).
fn point(gen: &Gen, object: &mut Value, k: usize) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    for (field, value) in map.iter_mut() {
        if value.is_string() && StripeResource::named(field).is_some() {
            *value = gen.refs.nth(field, k).map_or(Value::Null, Value::from);
        }
    }
    let charge = named(map, "charge");
    if let (Some(charge), true) = (&charge, map.contains_key("payment_intent")) {
        let intent = gen.refs.intent_of.get(charge);
        let intent = intent.map_or(Value::Null, |i| Value::from(i.as_str()));
        map.insert("payment_intent".into(), intent);
    }
    let owner = ["charge", "invoice", "payment_intent"]
        .iter()
        .filter_map(|f| named(map, f))
        .find_map(|id| gen.refs.customer_of.get(&id).cloned());
    if let (Some(customer), true) = (owner, map.contains_key("customer")) {
        map.insert("customer".into(), Value::from(customer));
    }
}

/// The id a field holds.
fn named(map: &Map<String, Value>, field: &str) -> Option<String> {
    map.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// What only one resource has.
fn details(gen: &Gen, resource: &StripeResource, object: &mut Value, k: usize) {
    let price = gen.refs.nth("price", k);
    let created = object
        .get("created")
        .and_then(Value::as_i64)
        .unwrap_or(gen.now);
    match resource.name {
        "balance_transaction" => set(
            object,
            json!({"source": gen.refs.nth("charge", k), "type": "charge",
                   "reporting_category": "charge", "available_on": created + 2 * 86_400,
                   "status": if k.is_multiple_of(3) { "pending" } else { "available" }}),
        ),
        "promotion_code" => set(
            object,
            json!({"code": format!("PROMO{}", k + 1), "active": k.is_multiple_of(2),
                   "promotion": {"coupon": gen.refs.nth("coupon", k), "type": "coupon"}}),
        ),
        "invoice_item" => {
            let pricing = match price {
                Some(price) => json!({"type": "price_details", "unit_amount_decimal": "1000",
                                      "price_details": {"price": price}}),
                None => json!({"type": "price_details", "unit_amount_decimal": "1000"}),
            };
            set(
                object,
                json!({"parent": null, "invoice": null, "pricing": pricing}),
            );
        }
        "subscription_schedule" => {
            if let Some(items) = object.pointer_mut("/phases/0/items/0") {
                set(items, json!({"price": price, "plan": price}));
            }
        }
        _ => {}
    }
}

/// A parent's children, from the child's fixture; a credit note line credits a line of the
/// credit note's invoice.
fn children(gen: &Gen, resource: &StripeResource, parent: &Value, k: usize) -> Vec<Value> {
    let Some(child) = &resource.child else {
        return Vec::new();
    };
    let Some(base) = fixture_ref(child.object) else {
        return Vec::new();
    };
    let shape = IdShape::of(base);
    let invoice_line = parent
        .get("invoice")
        .and_then(Value::as_str)
        .and_then(|invoice| gen.store.children(row("invoice")).of(invoice).first())
        .map(|line| line.id.clone());
    (0..CHILDREN_EACH)
        .map(|c| {
            let mut item = base.clone();
            let salt = 0x800 + row(resource.name) as u64;
            let id = shape.id(gen.ids, salt, k * CHILDREN_EACH + c);
            set(&mut item, json!({"id": id}));
            if let (Some(map), Some(line)) = (item.as_object_mut(), &invoice_line) {
                if map.contains_key("invoice_line_item") {
                    map.insert("invoice_line_item".into(), Value::from(line.as_str()));
                }
            }
            item
        })
        .collect()
}
