//! What customers are billed and pay: invoices and their lines, payment intents and their
//! charges, refunds. There can be tens of thousands of each, so each is rendered from a template
//! straight into the store.
//!
//! Statuses follow the object's index, so every run has the same mix: an invoice is `void` when
//! its index is 7 modulo 10, else `open` when it is 1 modulo 3, else `paid`; a payment intent is
//! `requires_payment_method` (without a charge) when its index is 4 modulo 5 or it has no charge
//! of the same index, else `succeeded` with that charge, which names it back.

use std::collections::HashSet;

use bytes::Bytes;
use serde_json::json;

use super::super::data::fixture;
use super::super::store::{to_bytes, Attrs, Stored};
use super::super::synth::{Field, Template};
use super::{row, set, spread, Counts, Gen, DAY, MONTH, YEAR};

const INVOICE_OWN: &[&str] = &[
    "id",
    "created",
    "customer",
    "status",
    "number",
    "period_start",
    "period_end",
    "effective_at",
    "subtotal",
    "subtotal_excluding_tax",
    "total",
    "total_excluding_tax",
    "amount_due",
    "amount_paid",
    "amount_remaining",
    "status_transitions",
];

const LINE_OWN: &[&str] = &[
    "id", "invoice", "amount", "subtotal", "quantity", "period", "pricing",
];

/// An invoice's status by its index.
fn invoice_status(i: usize) -> &'static str {
    if i % 10 == 7 {
        "void"
    } else if i % 3 == 1 {
        "open"
    } else {
        "paid"
    }
}

/// Invoices of customers of the data, each with its lines on prices of the data.
pub(super) fn invoices(gen: &mut Gen, counts: &Counts) {
    let n = counts.invoices;
    let mut rng = gen.stream(0x1);
    let mut invoice = fixture("invoice");
    set(
        &mut invoice,
        json!({"parent": null, "subscription": null, "attempted": true, "auto_advance": false,
               "metadata": {}, "description": null}),
    );
    if let Some(map) = invoice.as_object_mut() {
        map.remove("lines");
    }
    let invoice_template = Template::new(invoice, INVOICE_OWN);
    let mut line = fixture("line_item");
    set(
        &mut line,
        json!({"parent": null, "subscription": null, "metadata": {}}),
    );
    let line_template = Template::new(line, LINE_OWN);
    let fallback_pricing =
        Bytes::from_static(br#"{"type":"price_details","unit_amount_decimal":"1000"}"#);
    let mut line_no = 0u64;
    let mut pending: Vec<(String, Bytes)> = Vec::new();
    for i in 0..n {
        let id = gen.ids.make("in_", 24, 0x1f, i as u64);
        let created = spread(&mut rng, i, n, gen.now - YEAR, YEAR);
        let customer = gen
            .refs
            .customer_at(&mut rng, created, gen.now)
            .unwrap_or_default()
            .to_owned();
        let long = counts.long_invoice_every > 0 && (i + 1) % counts.long_invoice_every == 0;
        let lines = if long {
            counts.long_invoice_lines
        } else {
            counts.lines_per_invoice
        };
        let (start, end) = (created - MONTH, created);
        let period = to_bytes(&json!({"start": start, "end": end}));
        let mut total = 0;
        for j in 0..lines {
            let (pricing, unit) = match gen.refs.prices.len() {
                0 => (&fallback_pricing, 1000),
                len => {
                    let price = &gen.refs.prices[(i + j) % len];
                    (&price.pricing, price.unit_amount)
                }
            };
            let quantity = 1 + rng.below(3) as i64;
            let amount = unit * quantity;
            total += amount;
            let line_id = gen.ids.make("il_", 24, 0x11, line_no);
            line_no += 1;
            let json = line_template.render(&[
                Field::Str(&line_id),
                Field::Str(&id),
                Field::Int(amount),
                Field::Int(amount),
                Field::Int(quantity),
                Field::Raw(&period),
                Field::Raw(pricing),
            ]);
            // Inserted once the invoice is: children need their parent.
            pending.push((line_id, json));
        }
        let status = invoice_status(i);
        // Never in the future, for the newest invoices.
        let after = |secs: i64, from: i64| (from + secs).min(gen.now);
        let finalized = after(3_600, created);
        let paid = if status == "paid" { total } else { 0 };
        let remaining = if status == "open" { total } else { 0 };
        let transitions = json!({
            "finalized_at": finalized, "marked_uncollectible_at": null,
            "paid_at": (status == "paid").then(|| after(3_600, finalized)),
            "voided_at": (status == "void").then(|| after(DAY, finalized)),
        });
        let json = invoice_template.render(&[
            Field::Str(&id),
            Field::Int(created),
            Field::Str(&customer),
            Field::Str(status),
            Field::Str(&format!("INV-{:06}", i + 1)),
            Field::Int(start),
            Field::Int(end),
            Field::Int(finalized),
            Field::Int(total),
            Field::Int(total),
            Field::Int(total),
            Field::Int(total),
            Field::Int(total),
            Field::Int(paid),
            Field::Int(remaining),
            Field::Raw(&to_bytes(&transitions)),
        ]);
        let attrs = Attrs {
            status: Some(status.into()),
            customer: Some(customer.as_str().into()),
            ..Attrs::default()
        };
        gen.store.insert(
            row("invoice"),
            created,
            Stored {
                id: id.clone(),
                json,
                attrs,
            },
        );
        for (line_id, json) in pending.drain(..) {
            gen.store.insert_child(row("invoice"), &id, line_id, json);
        }
        gen.refs.add("invoice", &id);
        gen.refs.customer_of.insert(id, customer);
    }
}

const INTENT_OWN: &[&str] = &[
    "id",
    "created",
    "customer",
    "amount",
    "amount_received",
    "status",
    "latest_charge",
    "client_secret",
];

const CHARGE_OWN: &[&str] = &[
    "id",
    "created",
    "customer",
    "payment_intent",
    "amount",
    "amount_captured",
    "amount_refunded",
    "refunded",
];

/// Payment intents and charges: the `k`th of each are made in the same second, by the same
/// customer, and name each other unless the intent still `requires_payment_method`.
pub(super) fn payments(gen: &mut Gen, counts: &Counts) {
    let (n_intents, n_charges) = (counts.payment_intents, counts.charges);
    let n = n_intents.max(n_charges);
    let mut rng = gen.stream(0x2);
    let mut intent = fixture("payment_intent");
    set(
        &mut intent,
        json!({"payment_method": null, "metadata": {}, "description": null}),
    );
    let intent_template = Template::new(intent, INTENT_OWN);
    let mut charge = fixture("charge");
    set(
        &mut charge,
        json!({"source": null, "payment_method": null, "balance_transaction": null,
               "review": null, "refunds": null, "status": "succeeded", "paid": true,
               "captured": true, "metadata": {}, "description": null}),
    );
    let charge_template = Template::new(charge, CHARGE_OWN);
    let refunded = refunded_charges(counts);
    let ids = gen.ids;
    let intent_id = |k: usize| ids.make("pi_", 24, 0x91, k as u64);
    let charge_id = |k: usize| ids.make("ch_", 24, 0xc4, k as u64);
    for k in 0..n {
        let created = spread(&mut rng, k, n, gen.now - YEAR, YEAR);
        let customer = gen
            .refs
            .customer_at(&mut rng, created, gen.now)
            .unwrap_or_default()
            .to_owned();
        let amount = 500 * (1 + rng.below(40) as i64);
        let paired = k < n_intents && k < n_charges && k % 5 != 4;
        if k < n_intents {
            let id = intent_id(k);
            let status = if paired {
                "succeeded"
            } else {
                "requires_payment_method"
            };
            let latest = paired.then(|| charge_id(k));
            let secret = format!("{id}_secret_{}", ids.make("", 25, 0x5e, k as u64));
            let json = intent_template.render(&[
                Field::Str(&id),
                Field::Int(created),
                Field::Str(&customer),
                Field::Int(amount),
                Field::Int(if paired { amount } else { 0 }),
                Field::Str(status),
                nullable(latest.as_deref()),
                Field::Str(&secret),
            ]);
            let attrs = Attrs {
                status: Some(status.into()),
                customer: Some(customer.as_str().into()),
                ..Attrs::default()
            };
            gen.store.insert(
                row("payment_intent"),
                created,
                Stored {
                    id: id.clone(),
                    json,
                    attrs,
                },
            );
            gen.refs.add("payment_intent", &id);
            gen.refs.customer_of.insert(id, customer.clone());
        }
        if k < n_charges {
            let id = charge_id(k);
            let intent = paired.then(|| intent_id(k));
            let refund = if refunded.contains(&k) { amount / 2 } else { 0 };
            let json = charge_template.render(&[
                Field::Str(&id),
                Field::Int(created),
                Field::Str(&customer),
                nullable(intent.as_deref()),
                Field::Int(amount),
                Field::Int(amount),
                Field::Int(refund),
                Field::Raw(b"false"),
            ]);
            let attrs = Attrs {
                status: Some("succeeded".into()),
                customer: Some(customer.as_str().into()),
                ..Attrs::default()
            };
            gen.store.insert(
                row("charge"),
                created,
                Stored {
                    id: id.clone(),
                    json,
                    attrs,
                },
            );
            gen.refs.add("charge", &id);
            if let Some(intent) = intent {
                gen.refs.intent_of.insert(id.clone(), intent);
            }
            gen.refs.customer_of.insert(id.clone(), customer);
            gen.refs.charges.push((created, amount));
        }
    }
}

/// The charge the `r`th refund is of: refunds spread over the charges, one each while there are
/// enough.
fn refunded_charge(r: usize, counts: &Counts) -> usize {
    r * counts.charges / counts.refunds.max(1)
}

fn refunded_charges(counts: &Counts) -> HashSet<usize> {
    (0..counts.refunds.min(counts.charges))
        .map(|r| refunded_charge(r, counts))
        .collect()
}

const REFUND_OWN: &[&str] = &["id", "created", "charge", "payment_intent", "amount"];

/// Refunds of half a charge each, a day after it (or now, if sooner).
pub(super) fn refunds(gen: &mut Gen, counts: &Counts) {
    let n = counts.refunds;
    let mut rng = gen.stream(0x3);
    let mut refund = fixture("refund");
    set(
        &mut refund,
        json!({"status": "succeeded", "balance_transaction": null, "metadata": {}}),
    );
    let template = Template::new(refund, REFUND_OWN);
    for r in 0..n {
        let id = gen.ids.make("re_", 24, 0x4e, r as u64);
        let k = refunded_charge(r, counts);
        let charge = gen.refs.nth("charge", k).map(str::to_owned);
        let (created, amount) = match (&charge, gen.refs.charges.get(k)) {
            (Some(_), Some(&(at, amount))) => {
                ((at + DAY).min(gen.now - (n - r) as i64), amount / 2)
            }
            _ => (spread(&mut rng, r, n, gen.now - YEAR, YEAR), 500),
        };
        let intent = charge
            .as_ref()
            .and_then(|c| gen.refs.intent_of.get(c))
            .cloned();
        let json = template.render(&[
            Field::Str(&id),
            Field::Int(created),
            nullable(charge.as_deref()),
            nullable(intent.as_deref()),
            Field::Int(amount),
        ]);
        let attrs = Attrs {
            status: Some("succeeded".into()),
            ..Attrs::default()
        };
        gen.store.insert(
            row("refund"),
            created,
            Stored {
                id: id.clone(),
                json,
                attrs,
            },
        );
        gen.refs.add("refund", &id);
    }
}

/// An id, or `null`.
fn nullable(id: Option<&str>) -> Field<'_> {
    id.map_or(Field::Raw(b"null"), Field::Str)
}
