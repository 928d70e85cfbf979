//! A stateful fake of Stripe's HTTP API, speaking Stripe's real list protocol.
//!
//! [`FakeStripe`] serves every resource of the Stripe connector's table
//! ([`supasaasy_stripe::TABLE`]) on a real port, from data built with [`StripeData`]: each
//! top-level list at `/v1/{path}` and each retrieve at `/v1/{retrieve}/{id}`; the lists of a
//! resource listed per customer at `/v1/customers/{id}/{path}`; each parent's complete child list
//! (`/v1/subscription_items?subscription=...`, `/v1/invoices/{id}/lines`). Nothing in the fake
//! names a resource: a new row of the table is served as it is. Lists are newest first with
//! `limit`, `starting_after`, `ending_before` and, where the row has the filter, the `created`
//! filters; the row's fixed parameters are taken (subscriptions hide canceled ones unless asked,
//! `status=all`), `expand[]` is accepted and ignored, and parents embed at most ten children.
//! Tests change the data while it serves ([`FakeStripe::upsert`], [`FakeStripe::delete`]), count
//! requests, inject failures ([`FakeStripe::fail_next`], [`FakeStripe::refuse_created_filter`])
//! and slow it down ([`FakeStripe::set_latency`]). It serves from a thread and runtime of its own,
//! so whatever the test does with its own thread, the fake keeps answering.
//!
//! Every change made through the handle records the Stripe event it would cause, of a type its
//! row lists, served by `GET /v1/events` (list, with the type and `created` filters, 30 days of
//! retention) and `GET /v1/events/{id}`, and read back with [`FakeStripe::events`]. Events are
//! stamped with the fake's clock, real time unless pinned ([`FakeStripe::set_clock`]). The initial
//! data records none. [`stripe_signature`] signs a body the way Stripe signs webhook deliveries.
//!
//! ```no_run
//! # async fn demo() {
//! use supasaasy_testkit::fake_stripe::{Counts, FakeStripe, StripeData};
//!
//! let stripe = FakeStripe::start(StripeData::generate(&Counts::default())).await;
//! // point the client at stripe.base_url() with stripe.api_key()
//! stripe.fail_next(1, 429);
//! # }
//! ```

pub(crate) mod clock;
mod data;
mod error;
mod events;
mod generate;
mod kinds;
mod list;
mod query;
mod server;
mod store;
pub(crate) mod synth;
mod webhook;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use data::{fixture, StripeData, DEFAULT_API_KEY};
pub use events::{API_VERSION, RETENTION_SECS};
pub use generate::Counts;
pub use webhook::stripe_signature;

use crate::http_server::Server;
use data::parent_row;
use events::Subjects;
use kinds::Kind;
pub(crate) use server::lock;
use server::Shared;
use store::Store;
pub(crate) use store::{to_bytes, unix_now};

/// A running fake Stripe. Stops when dropped or with [`FakeStripe::shutdown`].
///
/// Resource names in the helpers are the names of the connector's table (`customer`, `invoice`,
/// `checkout_session`, `tax_id`...) and of its children, a child's collection key without
/// `stripe_` (`subscription_item`, `invoice_line_item`, `credit_note_line_item`); an unknown name
/// panics.
#[derive(Debug)]
pub struct FakeStripe {
    /// The store and counters, shared with the server thread.
    shared: Arc<Shared>,
    /// The server thread; stops when dropped.
    server: Server,
}

impl FakeStripe {
    /// Serves `data` on `127.0.0.1` on a free port.
    ///
    /// # Panics
    ///
    /// When no local port can be bound at all or no thread can be started.
    pub async fn start(data: StripeData) -> FakeStripe {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(addr, data)
            .await
            .expect("binding 127.0.0.1:0 for the fake Stripe")
    }

    /// Serves `data` on `addr` (port 0 picks a free one).
    ///
    /// The fake runs on its own thread and tokio runtime, so a test that blocks its own thread
    /// (waiting for a child process, say) does not stall it.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound or the server thread cannot start.
    pub async fn start_on(addr: SocketAddr, data: StripeData) -> std::io::Result<FakeStripe> {
        let shared = Arc::new(Shared::new(data.store, data.api_key));
        let server = Server::spawn("fake-stripe", addr, shared.clone(), server::handle).await?;
        Ok(FakeStripe { shared, server })
    }

    /// `http://127.0.0.1:PORT`, to use as the Stripe base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The API key the fake accepts.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// Stops serving and waits until the listener is closed; open connections are dropped.
    pub async fn shutdown(mut self) {
        self.server.shutdown().await;
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
    /// existing one keeps its children (change them with [`FakeStripe::set_children`] or by
    /// upserting children, which name their parent in `subscription` or `invoice`). An object
    /// listed per customer (`tax_id`, `payment_method`) goes to the list of the customer its
    /// `customer` names (`null`: detached, in no list).
    ///
    /// # Panics
    ///
    /// On an unknown resource, an object without a string `id`, a child whose parent does not
    /// exist (or that names none: use [`FakeStripe::set_children`]), or an object listed per
    /// customer whose `customer` is not a live customer.
    pub fn upsert(&self, resource: &str, object: Value) {
        let kind = Kind::named(resource);
        let now = self.shared.clock.now();
        let mut store = lock(&self.shared.store);
        let id = object.get("id").and_then(Value::as_str).unwrap_or_default();
        let subjects = Subjects::default()
            .touch(&store, kind, id)
            .parent(kind, parent_named(kind, &object));
        self.tracked(&mut store, subjects, |s| s.upsert(kind, object, now));
    }

    /// Applies `f` to the object as served and stores the result; returns whether it existed.
    /// Records the event [`FakeStripe::upsert`] would (`previous_attributes` holds the old values
    /// of the top-level keys `f` changed; a changed `id` records the old object's deletion and the
    /// new one's creation). A parent's children are not changed this way. `f` runs under the
    /// store's lock: it must not call back into the fake.
    ///
    /// # Panics
    ///
    /// As [`FakeStripe::upsert`], for the object `f` leaves.
    pub fn update(&self, resource: &str, id: &str, f: impl FnOnce(&mut Value)) -> bool {
        let kind = Kind::named(resource);
        let now = self.shared.clock.now();
        let mut store = lock(&self.shared.store);
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
        let mut store = lock(&self.shared.store);
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
        let mut store = lock(&self.shared.store);
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
        let now = self.shared.clock.now();
        lock(&self.shared.events).record_since(before, store, now);
        out
    }

    /// Adds a raw event to the log as given (it is served as is), with an `id` and a `created`
    /// (the fake's clock) if it has none; returns its id.
    ///
    /// # Panics
    ///
    /// When the event is not an object, its `id` is not a string or is already in the log, or its
    /// `created` is not an integer.
    pub fn push_event(&self, event: Value) -> String {
        let now = self.shared.clock.now();
        lock(&self.shared.events).push(event, now)
    }

    /// Every recorded event, oldest first (by `created`, then recording order): the reverse of
    /// `GET /v1/events`, but with events past retention too.
    pub fn events(&self) -> Vec<Value> {
        lock(&self.shared.events).all()
    }

    /// One recorded event, past retention or not.
    pub fn event(&self, id: &str) -> Option<Value> {
        lock(&self.shared.events).get(id)
    }

    /// The event recorded most recently (the newest by `created` too, unless the clock was set
    /// back or a back-dated event pushed).
    pub fn last_event(&self) -> Option<Value> {
        lock(&self.shared.events).last()
    }

    /// The fake's clock, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.shared.clock.now()
    }

    /// Pins the fake's clock to `unix_secs`, or with `None` lets it follow real time again.
    /// Changes made while it is pinned share one `created`.
    pub fn set_clock(&self, unix_secs: Option<i64>) {
        self.shared.clock.set(unix_secs);
    }

    /// Moves the fake's clock by `secs` (back when negative). A clock following real time is
    /// pinned at real time plus `secs`.
    pub fn advance_clock(&self, secs: i64) {
        self.shared.clock.advance(secs);
    }

    /// Live ids of a resource, newest first (children: grouped by parent, newest parent first,
    /// each parent's in its order).
    pub fn ids(&self, resource: &str) -> Vec<String> {
        lock(&self.shared.store).ids(Kind::named(resource))
    }

    /// One live object as a retrieve would serve it (`None` once deleted).
    pub fn get(&self, resource: &str, id: &str) -> Option<Value> {
        lock(&self.shared.store).get(Kind::named(resource), id)
    }

    /// How many live objects a resource has.
    pub fn count(&self, resource: &str) -> usize {
        lock(&self.shared.store).count(Kind::named(resource))
    }

    /// Requests received so far, whatever their answer.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Requests received whose path (query excluded) starts with `path_prefix`.
    pub fn requests_to(&self, path_prefix: &str) -> u64 {
        lock(&self.shared.by_path)
            .iter()
            .filter(|(path, _)| path.starts_with(path_prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Forgets the request counts.
    pub fn reset_requests(&self) {
        lock(&self.shared.by_path).clear();
        self.shared.requests.store(0, Ordering::Relaxed);
    }

    /// Answers the next `n` requests with `status` and a Stripe error body instead of serving them
    /// (429 also carries `Retry-After: 1`). Replaces any failures still queued.
    pub fn fail_next(&self, n: u64, status: u16) {
        let mut faults = lock(&self.shared.faults);
        faults.remaining = n;
        faults.status = status;
    }

    /// Refuses requests beyond `per_second` (a token bucket holding a tenth of a second's worth)
    /// with 429, as Stripe's rate limit does; `None` lifts it.
    pub fn set_rate_limit(&self, per_second: Option<f64>) {
        *lock(&self.shared.rate_limit) = per_second.map(server::Bucket::new);
    }

    /// Requests refused by the rate limit.
    pub fn rate_limited(&self) -> u64 {
        self.shared.rate_limited.load(Ordering::Relaxed)
    }

    /// While `refuse` holds, every list request carrying a `created` parameter
    /// (`created[gte]`...) answers 400 `{"error": {"type": "invalid_request_error", "message":
    /// "Unexpected created"}}`, as localstripe (a Stripe fake developers run) does.
    pub fn refuse_created_filter(&self, refuse: bool) {
        self.shared.refuse_created.store(refuse, Ordering::Relaxed);
    }

    /// Delays every answer by `latency` (without holding up other requests).
    pub fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.shared.latency_micros.store(micros, Ordering::Relaxed);
    }
}

/// The parent a child names in its parent field (for its event), when `kind` is a child kind.
fn parent_named(kind: Kind, object: &Value) -> Option<&str> {
    let field = kind.child()?.parent_field;
    object.get(field).and_then(Value::as_str)
}
