//! The catalogue and who buys from it: customers (and the discounts some carry), products,
//! prices and their plan twins, subscriptions and their items.
//!
//! Customers, subscriptions and items are many, so they are rendered from templates straight into
//! the store; items embed their price and plan as pre-serialised bytes.

use bytes::Bytes;
use serde_json::{json, Value};

use super::super::data::fixture;
use super::super::store::{to_bytes, Attrs, Stored};
use super::super::synth::{int_or_null, Field, Template};
use super::{row, set, spaced, spread, Counts, Gen, DAY, MONTH, YEAR};

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

/// A generated price: serialised for embedding in subscription items, and what an invoice line
/// on it says.
#[derive(Debug)]
pub(super) struct PriceInfo {
    pub price: Bytes,
    pub plan: Bytes,
    pub yearly: bool,
    /// A line's `pricing` on this price: `{"type": "price_details", "price_details": {...}}`.
    pub pricing: Bytes,
    pub unit_amount: i64,
}

/// Customers, the `others` of them spread over the list carrying a discount (stored as a
/// discount too).
pub(super) fn customers(gen: &mut Gen, counts: &Counts) {
    let n = counts.customers;
    let mut base = fixture("customer");
    set(
        &mut base,
        json!({"shipping": null, "metadata": {}, "description": null}),
    );
    let own = &[
        "id",
        "created",
        "email",
        "name",
        "invoice_prefix",
        "discount",
    ];
    let template = Template::new(base, own);
    let discounted = counts.others.min(n);
    let mut next_discount = 0;
    gen.refs.customers.reserve(n);
    for i in 0..n {
        let id = gen.ids.make("cus_", 14, 0xc0, i as u64);
        let created = spread(&mut gen.rng, i, n, gen.now - YEAR, YEAR);
        let email = format!("customer{}@example.com", i + 1);
        let name = format!(
            "{} {}",
            FIRST[i % FIRST.len()],
            LAST[(i / FIRST.len()) % LAST.len()]
        );
        let prefix = format!("{:08X}", gen.rng.next() as u32);
        let discount = match next_discount < discounted && spaced(next_discount, discounted, n) == i
        {
            true => {
                next_discount += 1;
                discount_of(gen, &id, created, next_discount - 1)
            }
            false => Bytes::from_static(b"null"),
        };
        let json = template.render(&[
            Field::Str(&id),
            Field::Int(created),
            Field::Str(&email),
            Field::Str(&name),
            Field::Str(&prefix),
            Field::Raw(&discount),
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
        gen.store.insert(row("customer"), created, stored);
        gen.refs.add("customer", &id);
        gen.refs.customers.push((id, created));
    }
}

/// The `k`th customer discount, on a coupon of the data, stored as a discount; its bytes.
fn discount_of(gen: &mut Gen, customer: &str, start: i64, k: usize) -> Bytes {
    let mut discount = fixture("discount");
    let id = gen.ids.make("di_", 24, 0xd1, k as u64);
    set(
        &mut discount,
        json!({"id": id, "customer": customer, "start": start, "end": null,
               "source": {"coupon": gen.refs.nth("coupon", k), "type": "coupon"}}),
    );
    let json = to_bytes(&discount);
    let stored = Stored {
        id: id.clone(),
        json: json.clone(),
        attrs: Attrs {
            customer: Some(customer.into()),
            ..Attrs::default()
        },
    };
    gen.store.insert(row("discount"), start, stored);
    gen.refs.add("discount", &id);
    json
}

/// Products, their prices and plan twins.
pub(super) fn catalog(gen: &mut Gen, counts: &Counts) {
    let (rng, now, ids) = (&mut gen.rng, gen.now, gen.ids);
    let (n_products, per) = (counts.products, counts.prices_per_product);
    let n_prices = n_products * per;
    let price_id = |j: usize| ids.make("price_", 24, 0x9e, j as u64);
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
    for p in 0..n_products {
        let id = ids.make("prod_", 14, 0x7d, p as u64);
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
        gen.store.put(row("product"), &product, now);
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
            gen.store.put(row("price"), &price, now);
            gen.store.put(row("plan"), &plan, now);
            let pricing = json!({
                "type": "price_details", "unit_amount_decimal": amount.to_string(),
                "price_details": {"price": price_id(j), "product": id},
            });
            gen.refs.add("price", &price_id(j));
            gen.refs.prices.push(PriceInfo {
                price: to_bytes(&price),
                plan: to_bytes(&plan),
                yearly: k % 2 == 1,
                pricing: to_bytes(&pricing),
                unit_amount: amount,
            });
        }
    }
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

pub(super) fn subscriptions(gen: &mut Gen, counts: &Counts) {
    let Gen {
        store,
        rng,
        ids,
        now,
        refs,
        ..
    } = gen;
    let ids = *ids;
    let (now, prices) = (*now, &refs.prices);
    if refs.customers.is_empty() {
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
        let id = ids.make("sub_", 24, 0x5b, i as u64);
        let created = spread(rng, i, n, now - YEAR, YEAR);
        // A customer that already existed when the subscription started.
        let customer = refs.customer_at(rng, created, now).unwrap_or_default();
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
            customer: Some(customer.into()),
            ..Attrs::default()
        };
        let stored = Stored {
            id: id.clone(),
            json,
            attrs,
        };
        store.insert(row("subscription"), created, stored);
        for j in 0..per_sub {
            let price = &prices[(first + j) % prices.len()];
            let item_id = ids.make("si_", 14, 0x51, item_no);
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
            store.insert_child(row("subscription"), &id, item_id, json);
        }
    }
}
