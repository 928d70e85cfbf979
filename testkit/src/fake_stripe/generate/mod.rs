//! Deterministic data generation: [`StripeData::generate`] and [`Counts`].
//!
//! Objects are cloned from Stripe's fixtures and given fresh ids of Stripe's shape (the prefix of
//! the fixture's id: `in_`, `ch_`, `cs_test_`...; coupons get human codes like `SUMMER25`),
//! distinct `created` times over the past year and references that hold: every price's product
//! exists, every plan mirrors a price (same id, as Stripe keeps them), every subscription's,
//! invoice's, charge's and payment intent's customer exists, every item's and line's price is a
//! price of the data, a charge and its payment intent name each other, and whatever else points
//! at a charge, an invoice or a customer points at one of the data (see `others`). A seeded PRNG
//! makes two runs with the same counts, clock and seed produce the same objects; each family of
//! resources draws from its own stream, so adding invoices changes no customer. Another seed
//! ([`StripeData::generate_seeded`]) gives other ids and times, so the connected accounts of a
//! platform can each have their own; seed 0 is what [`StripeData::generate`] makes.
//!
//! For speed, the kinds there are many of (customers, subscriptions and their items, invoices and
//! their lines, payment intents, charges, refunds) serialise the fields their objects share once
//! (a [`Template`](super::synth::Template)); each object writes only its own fields in front of
//! them, straight into the store. The kinds there are few of are fixtures edited as JSON.

mod billing;
mod catalog;
mod others;

use std::collections::HashMap;

use serde_json::Value;

use super::data::StripeData;
use super::kinds::Kind;
use super::store::{unix_now, Store};
use super::synth::{mix, stripe_id, Rng};

const DAY: i64 = 86_400;
const YEAR: i64 = 365 * DAY;
const MONTH: i64 = 30 * DAY;
const SEED: u64 = 0x5eed_5afe_cafe_f00d;

/// How many objects [`StripeData::generate`] creates. Everything beyond the catalogue and its
/// subscriptions is 0 by default; [`Counts::everything`] has a little of every resource.
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
    /// Invoices (none when there are no customers): most `paid`, some `open`, a few `void`.
    pub invoices: usize,
    /// Lines per invoice, each on a price of the data.
    pub lines_per_invoice: usize,
    /// Every Nth invoice has `long_invoice_lines` lines instead, more than an invoice embeds;
    /// 0 means none.
    pub long_invoice_every: usize,
    /// Lines of a long invoice.
    pub long_invoice_lines: usize,
    /// Charges (none when there are no customers).
    pub charges: usize,
    /// Payment intents: most `succeeded` with a charge, naming each other; some
    /// `requires_payment_method` without one.
    pub payment_intents: usize,
    /// Refunds, each of a different charge while there are enough.
    pub refunds: usize,
    /// Objects of each remaining resource (coupons, promotion codes, tax rates, schedules,
    /// invoice items, credit notes with lines, disputes, setup intents, checkout sessions,
    /// payouts, balance transactions, early fraud warnings, reviews); that many customers also
    /// get a tax id and a payment method, and that many carry a discount.
    pub others: usize,
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
            invoices: 0,
            lines_per_invoice: 0,
            long_invoice_every: 0,
            long_invoice_lines: 0,
            charges: 0,
            payment_intents: 0,
            refunds: 0,
            others: 0,
        }
    }
}

impl Counts {
    /// A small account with a little of every resource: 12 customers, 3 products of 2 prices,
    /// 6 subscriptions of 2 items (every third canceled), 10 invoices of 2 lines but the tenth
    /// with 40 (more than an invoice embeds), 10 charges, 12 payment intents, 3 refunds, and 3
    /// objects of every other resource (credit notes with lines among them), 3 customers with a
    /// tax id, a payment method and a discount.
    pub fn everything() -> Counts {
        Counts {
            customers: 12,
            products: 3,
            prices_per_product: 2,
            subscriptions: 6,
            items_per_subscription: 2,
            canceled_every: 3,
            invoices: 10,
            lines_per_invoice: 2,
            long_invoice_every: 10,
            long_invoice_lines: 40,
            charges: 10,
            payment_intents: 12,
            refunds: 3,
            others: 3,
        }
    }
}

/// What later objects point at: the objects made so far.
#[derive(Debug, Default)]
struct Refs {
    /// Ids by resource name, in the order they were made.
    ids: HashMap<&'static str, Vec<String>>,
    /// Customers and their `created`, oldest first.
    customers: Vec<(String, i64)>,
    /// The customer of an invoice, a charge or a payment intent.
    customer_of: HashMap<String, String>,
    /// The payment intent of a charge that has one.
    intent_of: HashMap<String, String>,
    /// Each charge's `created` and amount, in the order of `ids["charge"]`.
    charges: Vec<(i64, i64)>,
    /// Prices, for subscription items and invoice lines.
    prices: Vec<catalog::PriceInfo>,
}

impl Refs {
    fn add(&mut self, resource: &'static str, id: &str) {
        self.ids.entry(resource).or_default().push(id.to_owned());
    }

    /// The `n`th object of `resource` made so far (cycling), if there is any.
    fn nth(&self, resource: &str, n: usize) -> Option<&str> {
        let ids = self.ids.get(resource).filter(|ids| !ids.is_empty())?;
        Some(ids[n % ids.len()].as_str())
    }

    /// A customer that already existed at `created` (the oldest when none did).
    fn customer_at(&self, rng: &mut Rng, created: i64, now: i64) -> Option<&str> {
        let n = self.customers.len() as u128;
        if n == 0 {
            return None;
        }
        // Customers are spread evenly over the past year, oldest first.
        let before = ((created - (now - YEAR)).max(0) as u128 * n / YEAR as u128).min(n - 1);
        let i = rng.below(before as u64 + 1) as usize;
        Some(self.customers[i].0.as_str())
    }
}

/// How one generation makes ids: [`stripe_id`] with every salt mixed with the seed's, so two
/// seeds give unrelated ids and seed 0 gives the ids the fake always made.
#[derive(Debug, Clone, Copy)]
struct Ids(u64);

impl Ids {
    /// The `n`th id of a kind (its `salt`), `prefix` and `len` characters after it.
    fn make(self, prefix: &str, len: usize, salt: u64, n: u64) -> String {
        stripe_id(prefix, len, salt ^ self.0, n)
    }

    /// A suffix for human-chosen ids (coupon codes): empty for seed 0, else four characters of
    /// the seed, so `SUMMER25` of one seed is `SUMMER25K7QD` of another.
    fn tag(self) -> String {
        const ALNUM: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        if self.0 == 0 {
            return String::new();
        }
        (0..4)
            .map(|i| ALNUM[(self.0 >> (8 * i) & 0xff) as usize % ALNUM.len()] as char)
            .collect()
    }
}

/// The state of one generation.
struct Gen<'a> {
    store: &'a mut Store,
    /// The stream the catalogue, customers and subscriptions draw from.
    rng: Rng,
    /// The seed every stream derives from.
    seed: u64,
    /// How ids are made.
    ids: Ids,
    /// The clock the data is generated at.
    now: i64,
    refs: Refs,
}

impl Gen<'_> {
    /// A stream of its own for one family of resources.
    fn stream(&self, salt: u64) -> Rng {
        Rng(self.seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }
}

/// The place of a resource in the table.
fn row(name: &str) -> usize {
    Kind::named(name).index()
}

/// The `i`th of `n` ascending, distinct (when `span >= n`) times in `[start, start + span)`.
fn spread(rng: &mut Rng, i: usize, n: usize, start: i64, span: i64) -> i64 {
    let n = n.max(1) as i64;
    let step = (span / n).max(1);
    start + (i as i64) * span / n + rng.below(step as u64) as i64
}

/// The `i`th of `k` indices spread evenly over `0..n`.
fn spaced(i: usize, k: usize, n: usize) -> usize {
    i * n / k.max(1)
}

fn set(obj: &mut Value, fields: Value) {
    if let (Some(target), Value::Object(fields)) = (obj.as_object_mut(), fields) {
        target.extend(fields);
    }
}

impl StripeData {
    /// Generates consistent data with `counts`, timed relative to the current clock.
    pub fn generate(counts: &Counts) -> StripeData {
        Self::generate_at(counts, unix_now())
    }

    /// Generates consistent data with `counts`, timed as if the clock read `now` (Unix seconds):
    /// the same counts and `now` always give the same objects.
    pub fn generate_at(counts: &Counts, now: i64) -> StripeData {
        Self::generate_seeded_at(counts, 0, now)
    }

    /// As [`StripeData::generate`], from another seed: other ids (coupon codes take a suffix,
    /// `SUMMER25K7QD`), other times and choices, the same counts. Seed 0 is
    /// [`StripeData::generate`]; two accounts generated from different seeds share no id, from
    /// the same seed they share them all.
    pub fn generate_seeded(counts: &Counts, seed: u64) -> StripeData {
        Self::generate_seeded_at(counts, seed, unix_now())
    }

    /// As [`StripeData::generate_at`], from another seed (see
    /// [`StripeData::generate_seeded`]).
    pub fn generate_seeded_at(counts: &Counts, seed: u64, now: i64) -> StripeData {
        let mut data = StripeData::empty();
        // `mix` is a bijection fixing 0: seed 0 keeps the original streams and ids, and distinct
        // seeds stay distinct.
        let salt = mix(seed);
        let mut gen = Gen {
            store: &mut data.store,
            rng: Rng(SEED ^ salt),
            seed: SEED ^ salt,
            ids: Ids(salt),
            now,
            refs: Refs::default(),
        };
        others::coupons(&mut gen, counts.others);
        catalog::customers(&mut gen, counts);
        catalog::catalog(&mut gen, counts);
        catalog::subscriptions(&mut gen, counts);
        if !gen.refs.customers.is_empty() {
            billing::invoices(&mut gen, counts);
            billing::payments(&mut gen, counts);
        }
        billing::refunds(&mut gen, counts);
        others::remaining(&mut gen, counts.others);
        others::per_customer(&mut gen, counts.others);
        data
    }
}

#[cfg(test)]
mod tests;
