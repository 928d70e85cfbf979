//! Deterministic data generation: [`StripeData::generate`] and [`Counts`].
//!
//! Objects are cloned from Stripe's fixtures and given fresh ids of Stripe's shape, distinct
//! `created` times over the past year and references that hold: every price's product exists, every
//! plan mirrors a price (same id, as Stripe keeps them), every subscription's customer exists and
//! every item's price and plan are real prices of the data. A seeded PRNG makes two runs with the
//! same counts and clock produce the same objects.
//!
//! For speed, the fields objects of a kind share are serialised once (a
//! [`Template`](super::synth::Template)); each object
//! writes only its own fields in front of them, straight into the store, and items embed their
//! price and plan as pre-serialised bytes.

use bytes::Bytes;
use serde_json::{json, Value};

use super::data::{fixture, StripeData};
use super::store::{to_bytes, unix_now, Attrs, Resource, Store, Stored};
use super::synth::{int_or_null, stripe_id, Field, Rng, Template};

const DAY: i64 = 86_400;
const YEAR: i64 = 365 * DAY;
const MONTH: i64 = 30 * DAY;
const SEED: u64 = 0x5eed_5afe_cafe_f00d;

/// How many objects [`StripeData::generate`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Customers, with emails `customer1@example.com` .. `customer{N}@example.com`.
    pub customers: usize,
    /// Products.
    pub products: usize,
    /// Recurring prices per product (monthly and yearly, alternating); each has a plan twin.
    pub prices_per_product: usize,
    /// Subscriptions (none when there are no customers).
    pub subscriptions: usize,
    /// Items per subscription, each on a different price, so at most the number of prices.
    pub items_per_subscription: usize,
    /// Every Nth subscription is canceled; 0 means none.
    pub canceled_every: usize,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            customers: 50,
            products: 5,
            prices_per_product: 2,
            subscriptions: 40,
            items_per_subscription: 2,
            canceled_every: 4,
        }
    }
}

/// The `i`th of `n` ascending, distinct (when `span >= n`) times in `[start, start + span)`.
fn spread(rng: &mut Rng, i: usize, n: usize, start: i64, span: i64) -> i64 {
    let n = n.max(1) as i64;
    let step = (span / n).max(1);
    start + (i as i64) * span / n + rng.below(step as u64) as i64
}

/// The billing period containing `at`, for a subscription anchored at `anchor`.
fn period_at(anchor: i64, len: i64, at: i64) -> (i64, i64) {
    let k = (at - anchor).max(0) / len;
    let start = anchor + k * len;
    (start, start + len)
}

const FIRST: [&str; 12] = [
    "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia", "Ken",
    "Margaret", "Dennis",
];
const LAST: [&str; 12] = [
    "Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "McCarthy", "Perlman",
    "Thompson", "Hamilton", "Ritchie",
];

fn set(obj: &mut Value, fields: Value) {
    if let (Some(target), Value::Object(fields)) = (obj.as_object_mut(), fields) {
        target.extend(fields);
    }
}

/// A generated price, serialised for embedding in subscription items.
struct PriceInfo {
    price: Bytes,
    plan: Bytes,
    yearly: bool,
}

impl StripeData {
    /// Generates consistent data with `counts`, timed relative to the current clock.
    pub fn generate(counts: &Counts) -> StripeData {
        Self::generate_at(counts, unix_now())
    }

    /// Generates consistent data with `counts`, timed as if the clock read `now` (Unix seconds):
    /// the same counts and `now` always give the same objects.
    pub fn generate_at(counts: &Counts, now: i64) -> StripeData {
        let mut data = StripeData::empty();
        let mut rng = Rng(SEED);
        let customers = customers(&mut data.store, &mut rng, counts.customers, now);
        let prices = catalog(&mut data.store, &mut rng, counts, now);
        subscriptions(&mut data.store, &mut rng, counts, now, &customers, &prices);
        data
    }
}

fn customers(store: &mut Store, rng: &mut Rng, n: usize, now: i64) -> Vec<String> {
    let mut base = fixture("customer");
    set(
        &mut base,
        json!({"discount": null, "shipping": null, "metadata": {}, "description": null}),
    );
    let template = Template::new(base, &["id", "created", "email", "name", "invoice_prefix"]);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = stripe_id("cus_", 14, 0xc0, i as u64);
        let created = spread(rng, i, n, now - YEAR, YEAR);
        let email = format!("customer{}@example.com", i + 1);
        let name = format!(
            "{} {}",
            FIRST[i % FIRST.len()],
            LAST[(i / FIRST.len()) % LAST.len()]
        );
        let prefix = format!("{:08X}", rng.next() as u32);
        let json = template.render(&[
            Field::Str(&id),
            Field::Int(created),
            Field::Str(&email),
            Field::Str(&name),
            Field::Str(&prefix),
        ]);
        let attrs = Attrs {
            email: Some(email.into()),
            ..Attrs::default()
        };
        let stored = Stored {
            id: id.clone(),
            json,
            attrs,
        };
        store.insert(Resource::Customer, created, stored);
        ids.push(id);
    }
    ids
}

/// Products, their prices and plan twins.
fn catalog(store: &mut Store, rng: &mut Rng, counts: &Counts, now: i64) -> Vec<PriceInfo> {
    let (n_products, per) = (counts.products, counts.prices_per_product);
    let n_prices = n_products * per;
    let price_id = |j: usize| stripe_id("price_", 24, 0x9e, j as u64);
    let mut product = fixture("product");
    set(
        &mut product,
        json!({"package_dimensions": null, "type": "service", "shippable": null}),
    );
    let mut price = fixture("price");
    set(
        &mut price,
        json!({"transform_quantity": null, "custom_unit_amount": null}),
    );
    let mut plan = fixture("plan");
    set(&mut plan, json!({"transform_usage": null, "metadata": {}}));
    let mut out = Vec::with_capacity(n_prices);
    for p in 0..n_products {
        let id = stripe_id("prod_", 14, 0x7d, p as u64);
        let created = spread(rng, p, n_products, now - YEAR, MONTH);
        set(
            &mut product,
            json!({
                "id": id, "created": created, "updated": created,
                "name": format!("Product {}", p + 1),
                "description": format!("Plan number {} of the catalogue", p + 1),
                "default_price": if per > 0 { Value::from(price_id(p * per)) } else { Value::Null },
            }),
        );
        store.put(Resource::Product, &product);
        for k in 0..per {
            let j = p * per + k;
            let created = spread(rng, j, n_prices, now - YEAR + MONTH, MONTH);
            let interval = if k % 2 == 0 { "month" } else { "year" };
            let amount = 500 * (1 + (j % 10) as i64) * if k % 2 == 0 { 1 } else { 10 };
            let nickname = format!("Product {} {}ly", p + 1, interval);
            set(
                &mut price,
                json!({
                    "id": price_id(j), "created": created, "product": id,
                    "unit_amount": amount, "unit_amount_decimal": amount.to_string(),
                    "nickname": nickname,
                    "recurring": {"interval": interval, "interval_count": 1, "meter": null,
                                  "usage_type": "licensed", "trial_period_days": null},
                }),
            );
            set(
                &mut plan,
                json!({
                    "id": price_id(j), "created": created, "product": id,
                    "amount": amount, "amount_decimal": amount.to_string(),
                    "interval": interval, "interval_count": 1, "nickname": nickname,
                    "billing_scheme": "per_unit", "currency": "usd", "livemode": false,
                }),
            );
            store.put(Resource::Price, &price);
            store.put(Resource::Plan, &plan);
            out.push(PriceInfo {
                price: to_bytes(&price),
                plan: to_bytes(&plan),
                yearly: k % 2 == 1,
            });
        }
    }
    out
}

const SUBSCRIPTION_OWN: &[&str] = &[
    "id",
    "created",
    "customer",
    "status",
    "start_date",
    "billing_cycle_anchor",
    "trial_start",
    "trial_end",
    "canceled_at",
    "ended_at",
    "cancellation_details",
];

const ITEM_OWN: &[&str] = &[
    "id",
    "created",
    "subscription",
    "quantity",
    "current_period_start",
    "current_period_end",
    "price",
    "plan",
];

fn subscriptions(
    store: &mut Store,
    rng: &mut Rng,
    counts: &Counts,
    now: i64,
    customers: &[String],
    prices: &[PriceInfo],
) {
    if customers.is_empty() {
        return;
    }
    let n = counts.subscriptions;
    let mut sub = fixture("subscription");
    set(
        &mut sub,
        json!({
            "cancel_at": null, "cancel_at_period_end": false, "next_pending_invoice_item_invoice": null,
            "pause_collection": null, "pending_update": null, "pending_invoice_item_interval": null,
            "transfer_data": null, "billing_cycle_anchor_config": null, "billing_thresholds": null,
            "schedule": null, "latest_invoice": null, "billing_schedules": [],
            "managed_payments": {"enabled": false}, "metadata": {},
        }),
    );
    if let Some(map) = sub.as_object_mut() {
        map.remove("items");
    }
    let sub_template = Template::new(sub, SUBSCRIPTION_OWN);
    let mut item = fixture("subscription_item");
    set(
        &mut item,
        json!({"billing_thresholds": null, "discounts": [], "tax_rates": [], "metadata": {}}),
    );
    let item_template = Template::new(item, ITEM_OWN);
    let not_canceled = br#"{"comment":null,"feedback":null,"reason":null}"#;
    let canceled = br#"{"comment":null,"feedback":null,"reason":"cancellation_requested"}"#;
    let per_sub = counts.items_per_subscription.min(prices.len());
    let mut item_no = 0u64;
    for i in 0..n {
        let id = stripe_id("sub_", 24, 0x5b, i as u64);
        let created = spread(rng, i, n, now - YEAR, YEAR);
        // A customer that already existed when the subscription started.
        let before = ((created - (now - YEAR)) as u128 * customers.len() as u128 / YEAR as u128)
            .min(customers.len() as u128 - 1) as u64;
        let customer = &customers[rng.below(before + 1) as usize];
        let status = if counts.canceled_every > 0 && (i + 1) % counts.canceled_every == 0 {
            "canceled"
        } else {
            match rng.below(10) {
                0..=6 => "active",
                7 | 8 => "trialing",
                _ => "past_due",
            }
        };
        let first = rng.below(prices.len() as u64) as usize;
        let len = if per_sub > 0 && prices[first].yearly {
            YEAR
        } else {
            MONTH
        };
        let (mut trial, mut ended) = (None, None);
        let (period_start, period_end) = match status {
            "trialing" => {
                let end = now + DAY * (1 + rng.below(14) as i64);
                trial = Some((created, end));
                (created, end)
            }
            "canceled" => {
                let at = created + 1 + rng.below((now - created).max(1) as u64) as i64;
                ended = Some(at);
                period_at(created, len, at)
            }
            _ => period_at(created, len, now),
        };
        let json = sub_template.render(&[
            Field::Str(&id),
            Field::Int(created),
            Field::Str(customer),
            Field::Str(status),
            Field::Int(created),
            Field::Int(created),
            int_or_null(trial.map(|t| t.0)),
            int_or_null(trial.map(|t| t.1)),
            int_or_null(ended),
            int_or_null(ended),
            Field::Raw(if ended.is_some() {
                canceled
            } else {
                not_canceled
            }),
        ]);
        let attrs = Attrs {
            status: Some(status.into()),
            customer: Some(customer.as_str().into()),
            ..Attrs::default()
        };
        let stored = Stored {
            id: id.clone(),
            json,
            attrs,
        };
        store.insert(Resource::Subscription, created, stored);
        for j in 0..per_sub {
            let price = &prices[(first + j) % prices.len()];
            let item_id = stripe_id("si_", 14, 0x51, item_no);
            item_no += 1;
            let json = item_template.render(&[
                Field::Str(&item_id),
                Field::Int(created),
                Field::Str(&id),
                Field::Int(1 + rng.below(3) as i64),
                Field::Int(period_start),
                Field::Int(period_end),
                Field::Raw(&price.price),
                Field::Raw(&price.plan),
            ]);
            store.insert_item(&id, item_id, json);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generation_is_deterministic_and_consistent() {
        let counts = Counts {
            customers: 30,
            products: 3,
            prices_per_product: 4,
            subscriptions: 20,
            items_per_subscription: 3,
            canceled_every: 5,
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
                assert!(
                    item["current_period_end"].as_i64() > item["current_period_start"].as_i64()
                );
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
}
