//! One Stripe account's state and the handle tests change it through.
//!
//! The platform and each connected account are an [`Account`] each: their own objects (so the same
//! id can live in two of them) and their own event log. [`FakeAccount`] is the one place that
//! changes an account and records the events it causes; [`FakeStripe`](super::FakeStripe)'s own
//! mutation and inspection methods are its platform's `FakeAccount`'s. The events of a connected
//! account carry its id in the top-level `account`, as Stripe's Connect events do; the platform's
//! own carry none.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::clock::Clock;
use super::data::parent_row;
use super::events::{EventLog, Subjects};
use super::kinds::Kind;
use super::server::lock;
use super::store::Store;

/// One account's objects and events.
#[derive(Debug)]
pub(crate) struct Account {
    /// `acct_...`.
    pub id: String,
    pub store: Mutex<Store>,
    /// The events changes recorded. Locked after `store`, never before.
    pub events: Mutex<EventLog>,
}

impl Account {
    /// The platform's account: its events name no account.
    pub fn platform(id: &str, store: Store) -> Account {
        Account {
            id: id.to_owned(),
            store: Mutex::new(store),
            events: Mutex::new(EventLog::default()),
        }
    }

    /// A connected account: its events carry `"account": id`.
    pub fn connected(id: &str, store: Store) -> Account {
        Account {
            id: id.to_owned(),
            store: Mutex::new(store),
            events: Mutex::new(EventLog::of_account(id)),
        }
    }
}

/// The handle on one account of a [`FakeStripe`](super::FakeStripe): the platform's (what
/// `FakeStripe`'s own methods use) or a connected account's
/// ([`FakeStripe::in_account`](super::FakeStripe::in_account)).
///
/// Resource names are those of the connector's table and of its children, as for `FakeStripe`;
/// an unknown name panics. Changes are live: the next request sees them.
#[derive(Debug, Clone)]
pub struct FakeAccount<'a> {
    /// The fake's clock, which stamps events and missing `created` times.
    clock: &'a Clock,
    /// The account; shared, so a handle outlives a disconnection.
    account: Arc<Account>,
}

impl<'a> FakeAccount<'a> {
    pub(crate) fn new(clock: &'a Clock, account: Arc<Account>) -> Self {
        FakeAccount { clock, account }
    }

    /// The account's id (`acct_...`).
    pub fn id(&self) -> &str {
        &self.account.id
    }

    /// Inserts or replaces an object, live, and records its event, of a type its row lists:
    /// created (the row's `….created` type, else its first) or updated (its first `….updated`
    /// type, else its first that does not mean gone); a subscription whose `status` becomes
    /// `canceled` records `customer.subscription.deleted`. A child records its parent's update.
    /// A resource without events (balance transactions) records nothing.
    ///
    /// A missing `created` is set to the fake's clock (on resources whose objects carry one). A
    /// replaced object keeps its place among objects created in the same second. A new parent
    /// takes its children from its child field (`items.data`, `lines.data`) when present; an
    /// existing one keeps its children (change them with [`FakeAccount::set_children`] or by
    /// upserting children, which name their parent in `subscription` or `invoice`). An object
    /// listed per customer (`tax_id`, `payment_method`) goes to the list of the customer its
    /// `customer` names (`null`: detached, in no list).
    ///
    /// # Panics
    ///
    /// On an unknown resource, an object without a string `id`, a child whose parent does not
    /// exist (or that names none: use [`FakeAccount::set_children`]), or an object listed per
    /// customer whose `customer` is not a live customer.
    pub fn upsert(&self, resource: &str, object: Value) {
        let kind = Kind::named(resource);
        let now = self.clock.now();
        let mut store = lock(&self.account.store);
        let id = object.get("id").and_then(Value::as_str).unwrap_or_default();
        let subjects = Subjects::default()
            .touch(&store, kind, id)
            .parent(kind, parent_named(kind, &object));
        self.tracked(&mut store, subjects, |s| s.upsert(kind, object, now));
    }

    /// Applies `f` to the object as served and stores the result; returns whether it existed.
    /// Records the event [`FakeAccount::upsert`] would (`previous_attributes` holds the old
    /// values of the top-level keys `f` changed; a changed `id` records the old object's deletion
    /// and the new one's creation). A parent's children are not changed this way. `f` runs under
    /// the store's lock: it must not call back into the fake.
    ///
    /// # Panics
    ///
    /// As [`FakeAccount::upsert`], for the object `f` leaves.
    pub fn update(&self, resource: &str, id: &str, f: impl FnOnce(&mut Value)) -> bool {
        let kind = Kind::named(resource);
        let now = self.clock.now();
        let mut store = lock(&self.account.store);
        let Some(mut object) = store.get(kind, id) else {
            return false;
        };
        f(&mut object);
        let new_id = object.get("id").and_then(Value::as_str).unwrap_or(id);
        let subjects = Subjects::default()
            .touch(&store, kind, id)
            .touch(&store, kind, new_id)
            .parent(kind, parent_named(kind, &object));
        self.tracked(&mut store, subjects, |s| s.replace(kind, id, object, now));
        true
    }

    /// Removes an object from lists and retrieves; returns whether it was there. A deleted
    /// customer still retrieves, as `{"id", "object": "customer", "deleted": true}`, and its
    /// per-customer lists answer 404; a deleted parent takes its children with it. Nothing
    /// cascades otherwise (a deleted customer's subscriptions stay as they are).
    ///
    /// Records the row's first `deleted_by` type with the object's last state (a customer's with
    /// `"deleted": true`), or nothing when the row has none (Stripe cancels subscriptions, it
    /// does not delete them); a child records its parent's update.
    pub fn delete(&self, resource: &str, id: &str) -> bool {
        let kind = Kind::named(resource);
        let mut store = lock(&self.account.store);
        let subjects = Subjects::default().touch(&store, kind, id);
        self.tracked(&mut store, subjects, |s| s.delete(kind, id))
    }

    /// Replaces the children of a parent (`set_children("invoice", "in_1", lines)`), stored as
    /// given but for the parent field, which is set on children that carry one (a subscription
    /// item's `subscription`, an invoice line's `invoice`; a credit note line has none). Records
    /// the parent's update (also for any parent a child is taken from).
    ///
    /// # Panics
    ///
    /// When the resource has no children, the parent does not exist or a child has no string
    /// `id`.
    pub fn set_children(&self, parent_resource: &str, parent_id: &str, children: Vec<Value>) {
        let row = parent_row(parent_resource);
        let kind = Kind::Child(row);
        let mut store = lock(&self.account.store);
        let subjects = children
            .iter()
            .filter_map(|child| child.get("id").and_then(Value::as_str))
            .fold(
                Subjects::default().parent(kind, Some(parent_id)),
                |subjects, id| subjects.touch(&store, kind, id),
            );
        self.tracked(&mut store, subjects, |s| {
            s.set_children(row, parent_id, children)
        });
    }

    /// Replaces a subscription's items: `set_children("subscription", ...)`.
    ///
    /// # Panics
    ///
    /// When the subscription does not exist or an item has no string `id`.
    pub fn set_subscription_items(&self, subscription_id: &str, items: Vec<Value>) {
        self.set_children("subscription", subscription_id, items);
    }

    /// Runs `change` and records an event for each subject, under the store's lock throughout so
    /// the log keeps the order of the changes.
    fn tracked<R>(
        &self,
        store: &mut Store,
        subjects: Subjects,
        change: impl FnOnce(&mut Store) -> R,
    ) -> R {
        let before = subjects.snapshot(store);
        let out = change(store);
        let now = self.clock.now();
        lock(&self.account.events).record_since(before, store, now);
        out
    }

    /// Adds a raw event to the account's log as given (it is served as is), with an `id` and a
    /// `created` (the fake's clock) if it has none, and in a connected account its `account` if
    /// it has none; returns its id.
    ///
    /// # Panics
    ///
    /// When the event is not an object, its `id` is not a string or is already in the log, or its
    /// `created` is not an integer.
    pub fn push_event(&self, event: Value) -> String {
        let now = self.clock.now();
        lock(&self.account.events).push(event, now)
    }

    /// Every event recorded in the account, oldest first (by `created`, then recording order):
    /// the reverse of `GET /v1/events`, but with events past retention too.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.account.events).all()
    }

    /// One recorded event of the account, past retention or not.
    pub fn event(&self, id: &str) -> Option<Value> {
        lock(&self.account.events).get(id)
    }

    /// The event recorded most recently in the account (the newest by `created` too, unless the
    /// clock was set back or a back-dated event pushed).
    pub fn last_event(&self) -> Option<Value> {
        lock(&self.account.events).last()
    }

    /// Live ids of a resource, newest first (children: grouped by parent, newest parent first,
    /// each parent's in its order).
    pub fn ids(&self, resource: &str) -> Vec<String> {
        lock(&self.account.store).ids(Kind::named(resource))
    }

    /// One live object as a retrieve would serve it (`None` once deleted).
    pub fn get(&self, resource: &str, id: &str) -> Option<Value> {
        lock(&self.account.store).get(Kind::named(resource), id)
    }

    /// How many live objects a resource has.
    pub fn count(&self, resource: &str) -> usize {
        lock(&self.account.store).count(Kind::named(resource))
    }
}

/// The parent a child names in its parent field (for its event), when `kind` is a child kind.
fn parent_named(kind: Kind, object: &Value) -> Option<&str> {
    let field = kind.child()?.parent_field;
    object.get(field).and_then(Value::as_str)
}
