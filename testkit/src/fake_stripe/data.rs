//! [`StripeData`]: the objects, API key and connected accounts a
//! [`FakeStripe`](super::FakeStripe) starts with, and the raw Stripe fixtures they are cloned from.
//!
//! The fixtures are Stripe's own OpenAPI examples (`data/stripe_fixtures3.json`, current API shape:
//! `current_period_start/end` on subscription items), embedded in the binary.

use std::sync::OnceLock;

use serde_json::Value;

use super::kinds::Kind;
use super::store::{unix_now, Store};

/// The API key a fake accepts unless told otherwise.
pub const DEFAULT_API_KEY: &str = "sk_test_fake";

/// The platform's account id unless told otherwise: `acct_` and 16 characters, as Stripe's.
pub const DEFAULT_ACCOUNT_ID: &str = "acct_fakeplatform0001";

static FIXTURES: &str = include_str!("../../data/stripe_fixtures3.json");

/// One raw fixture object, as Stripe's API reference shows it (`customer`, `subscription_item`,
/// `deleted_customer`...).
///
/// # Panics
///
/// When the fixture file has no object by that name.
pub fn fixture(resource: &str) -> Value {
    fixture_ref(resource)
        .cloned()
        .unwrap_or_else(|| panic!("no Stripe fixture named {resource:?}"))
}

/// The fixture named `resource`, without copying it; `None` when there is none.
pub(crate) fn fixture_ref(resource: &str) -> Option<&'static Value> {
    static PARSED: OnceLock<Value> = OnceLock::new();
    let all = PARSED.get_or_init(|| {
        serde_json::from_str(FIXTURES).expect("the embedded Stripe fixtures are valid JSON")
    });
    all.get("resources").and_then(|r| r.get(resource))
}

/// The state a fake Stripe serves: the platform's objects, its account id, the API key it
/// accepts, and the connected accounts it reaches with `Stripe-Account`, each with objects of its
/// own.
///
/// Build one with [`StripeData::generate`] or [`StripeData::empty`] and [`StripeData::upsert`].
/// Resource names are those of the connector's table (`customer`, `invoice`, `tax_id`...) and
/// of its children (`subscription_item`, `invoice_line_item`, `credit_note_line_item`).
#[derive(Debug)]
pub struct StripeData {
    /// The key clients must present.
    pub(crate) api_key: String,
    /// The platform's `acct_` id, for `/v1/account` and `Stripe-Account`.
    pub(crate) account_id: String,
    /// The objects, already indexed the way the server reads them.
    pub(crate) store: Store,
    /// Connected accounts and their objects, in the order they were added (oldest first).
    pub(crate) connected: Vec<(String, Store)>,
}

impl Default for StripeData {
    fn default() -> Self {
        Self::empty()
    }
}

impl StripeData {
    /// No objects, the default API key and account id, no connected accounts.
    pub fn empty() -> Self {
        StripeData {
            api_key: DEFAULT_API_KEY.to_owned(),
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            store: Store::default(),
            connected: Vec::new(),
        }
    }

    /// The same data, as the platform account `id` ([`DEFAULT_ACCOUNT_ID`] otherwise).
    ///
    /// # Panics
    ///
    /// When a connected account already has that id.
    pub fn with_account_id(mut self, id: &str) -> Self {
        assert!(
            !self.connected.iter().any(|(c, _)| c == id),
            "{id} is already a connected account"
        );
        self.account_id = id.to_owned();
        self
    }

    /// The platform's account id.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The same data, with `account_id` connected to the platform, serving `data`'s objects to
    /// requests that carry `Stripe-Account: {account_id}`. `data`'s API key and account id are
    /// ignored: the platform's key reaches the account, and `account_id` names it. Accounts are
    /// created an hour apart, in the order they are added, before the fake starts.
    ///
    /// # Panics
    ///
    /// When `account_id` is the platform's or already connected, or `data` has connected
    /// accounts of its own (Stripe has no nested platforms).
    pub fn with_connected_account(mut self, account_id: &str, data: StripeData) -> Self {
        assert!(
            account_id != self.account_id,
            "{account_id} is the platform"
        );
        assert!(
            !self.connected.iter().any(|(c, _)| c == account_id),
            "{account_id} is already connected"
        );
        assert!(
            data.connected.is_empty(),
            "connected account {account_id} cannot have connected accounts of its own"
        );
        self.connected.push((account_id.to_owned(), data.store));
        self
    }

    /// The connected accounts' ids, in the order they were added.
    pub fn connected_account_ids(&self) -> Vec<String> {
        self.connected.iter().map(|(id, _)| id.clone()).collect()
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

    /// Inserts or replaces an object (see [`FakeStripe::upsert`](super::FakeStripe::upsert)); a
    /// missing `created` is set to the current time.
    ///
    /// # Panics
    ///
    /// On an unknown resource name, an object without a string `id`, a child whose parent does
    /// not exist yet, or an object listed per customer whose `customer` does not exist.
    pub fn upsert(&mut self, resource: &str, object: Value) {
        self.store.upsert(Kind::named(resource), object, unix_now());
    }

    /// Replaces the children of a parent (`set_children("invoice", "in_1", lines)`).
    ///
    /// # Panics
    ///
    /// When the resource has no children, the parent does not exist or a child has no string
    /// `id`.
    pub fn set_children(&mut self, parent_resource: &str, parent_id: &str, children: Vec<Value>) {
        let row = parent_row(parent_resource);
        self.store.set_children(row, parent_id, children);
    }

    /// Replaces a subscription's items: `set_children("subscription", ...)`.
    ///
    /// # Panics
    ///
    /// When the subscription does not exist or an item has no string `id`.
    pub fn set_subscription_items(&mut self, subscription_id: &str, items: Vec<Value>) {
        self.set_children("subscription", subscription_id, items);
    }

    /// Ids of a resource, newest first (children: by parent, then in the parent's order).
    pub fn ids(&self, resource: &str) -> Vec<String> {
        self.store.ids(Kind::named(resource))
    }

    /// One live object as the fake would serve it (`None` once deleted).
    pub fn get(&self, resource: &str, id: &str) -> Option<Value> {
        self.store.get(Kind::named(resource), id)
    }

    /// How many objects a resource has.
    pub fn count(&self, resource: &str) -> usize {
        self.store.count(Kind::named(resource))
    }
}

/// The place in the table of a resource with children.
///
/// # Panics
///
/// When the resource is unknown or has no children.
pub(crate) fn parent_row(resource: &str) -> usize {
    match Kind::named(resource) {
        Kind::Row(row) if Kind::Row(row).row().child.is_some() => row,
        _ => panic!("{resource:?} has no children"),
    }
}
