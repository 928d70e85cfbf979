//! [`StripeData`]: the objects and API key a [`FakeStripe`](super::FakeStripe) starts with, and the
//! raw Stripe fixtures they are cloned from.
//!
//! The fixtures are Stripe's own OpenAPI examples (`data/stripe_fixtures3.json`, current API shape:
//! `current_period_start/end` on subscription items), embedded in the binary.

use std::sync::OnceLock;

use serde_json::Value;

use super::store::{Resource, Store};

/// The API key a fake accepts unless told otherwise.
pub const DEFAULT_API_KEY: &str = "sk_test_fake";

static FIXTURES: &str = include_str!("../../data/stripe_fixtures3.json");

/// One raw fixture object, as Stripe's API reference shows it (`customer`, `subscription_item`,
/// `deleted_customer`...).
///
/// # Panics
///
/// When the fixture file has no object by that name.
pub fn fixture(resource: &str) -> Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    let all = PARSED.get_or_init(|| {
        serde_json::from_str(FIXTURES).expect("the embedded Stripe fixtures are valid JSON")
    });
    all.get("resources")
        .and_then(|r| r.get(resource))
        .cloned()
        .unwrap_or_else(|| panic!("no Stripe fixture named {resource:?}"))
}

/// The state a fake Stripe serves: its objects and the API key it accepts.
///
/// Build one with [`StripeData::generate`] or [`StripeData::empty`] and [`StripeData::upsert`].
/// Resource names are Stripe's object names: `customer`, `product`, `price`, `plan`,
/// `subscription`, `subscription_item`.
#[derive(Debug)]
pub struct StripeData {
    /// The key clients must present.
    pub(crate) api_key: String,
    /// The objects, already indexed the way the server reads them.
    pub(crate) store: Store,
}

impl Default for StripeData {
    fn default() -> Self {
        Self::empty()
    }
}

impl StripeData {
    /// No objects, the default API key.
    pub fn empty() -> Self {
        StripeData {
            api_key: DEFAULT_API_KEY.to_owned(),
            store: Store::default(),
        }
    }

    /// The same data, accepting another API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = key.into();
        self
    }

    /// The API key clients must present.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// Inserts or replaces an object (see [`FakeStripe::upsert`](super::FakeStripe::upsert)).
    ///
    /// # Panics
    ///
    /// On an unknown resource name, an object without a string `id`, or an item whose
    /// `subscription` does not exist yet.
    pub fn upsert(&mut self, resource: &str, object: Value) {
        self.store.upsert(Resource::named(resource), object);
    }

    /// Replaces a subscription's items.
    ///
    /// # Panics
    ///
    /// When the subscription does not exist or an item has no string `id`.
    pub fn set_subscription_items(&mut self, subscription_id: &str, items: Vec<Value>) {
        self.store.set_items(subscription_id, items);
    }

    /// Ids of a resource, newest first.
    pub fn ids(&self, resource: &str) -> Vec<String> {
        self.store.ids(Resource::named(resource))
    }

    /// One live object as the fake would serve it (`None` once deleted).
    pub fn get(&self, resource: &str, id: &str) -> Option<Value> {
        self.store.get(Resource::named(resource), id)
    }

    /// How many objects a resource has.
    pub fn count(&self, resource: &str) -> usize {
        self.store.count(Resource::named(resource))
    }
}
