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
//! The fake is a Stripe Connect platform ([`StripeData::with_account_id`], default
//! [`DEFAULT_ACCOUNT_ID`]) with connected accounts
//! ([`StripeData::with_connected_account`], [`FakeStripe::connect`]), each with objects and an
//! event log of its own, so the same id can live in two of them
//! ([`StripeData::generate_seeded`] gives each account its own ids). A request carrying
//! `Stripe-Account: acct_X` is served wholly from that account: lists, retrieves, child and
//! per-customer lists, `/v1/events`; one naming an account the platform does not reach (never
//! connected, or disconnected) answers 403 `{"error": {"type": "invalid_request_error", "code":
//! "account_invalid", "message": "The provided key 'sk_test_****...' does not have access to
//! account 'acct_X' (or that account does not exist). Application access may have been
//! revoked."}}`. `GET /v1/account` answers the account object (the `account` fixture with its
//! `id`) of the account reached; `GET /v1/accounts` (newest first, `limit`, cursors, `created`
//! filters) and `/v1/accounts/{id}` the platform's connected accounts, and only to the platform:
//! with a connected account's `Stripe-Account` they answer 403 "You cannot access the connected
//! accounts of your Platform's connected accounts.". [`FakeStripe::in_account`] is the handle on
//! one connected account ([`FakeAccount`]: the platform methods' `upsert`, `update`, `delete`,
//! `set_children`, `ids`, `get`, `events`...); its events carry `"account": "acct_X"` and are
//! listed only with its `Stripe-Account`. [`FakeStripe::disconnect`] revokes an account quietly,
//! [`FakeStripe::deauthorize`] with `account.application.deauthorized` on the platform's log,
//! and [`FakeStripe::update_account`] records `account.updated` there.
//! [`FakeStripe::requests_for_account`] counts the requests that named an account.
//!
//! ```no_run
//! # async fn demo() {
//! use serde_json::json;
//! use supasaasy_testkit::fake_stripe::{Counts, FakeStripe, StripeData};
//!
//! let connected = StripeData::generate_seeded(&Counts::default(), 1);
//! let data = StripeData::generate(&Counts::default()).with_connected_account("acct_1A", connected);
//! let stripe = FakeStripe::start(data).await;
//! // point the client at stripe.base_url() with stripe.api_key()
//! stripe.fail_next(1, 429);
//! stripe.in_account("acct_1A").upsert("coupon", json!({"id": "SUMMER", "object": "coupon"}));
//! # }
//! ```

mod account;
pub(crate) mod clock;
mod connect;
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

pub use account::FakeAccount;
pub use data::{fixture, StripeData, DEFAULT_ACCOUNT_ID, DEFAULT_API_KEY};
pub use events::{API_VERSION, RETENTION_SECS};
pub use generate::Counts;
pub use webhook::stripe_signature;

use crate::http_server::Server;
use events::{new_event, previous_attributes};
pub(crate) use server::lock;
use server::{read, write, Shared};
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
        let shared = Arc::new(Shared::new(data));
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

    /// The platform's handle: what the methods below change and read.
    fn platform(&self) -> FakeAccount<'_> {
        FakeAccount::new(&self.shared.clock, self.shared.platform.clone())
    }

    /// Inserts or replaces an object of the platform, live, and records its event: see
    /// [`FakeAccount::upsert`].
    ///
    /// # Panics
    ///
    /// As [`FakeAccount::upsert`].
    pub fn upsert(&self, resource: &str, object: Value) {
        self.platform().upsert(resource, object);
    }

    /// Edits an object of the platform as served; returns whether it existed: see
    /// [`FakeAccount::update`].
    ///
    /// # Panics
    ///
    /// As [`FakeAccount::update`].
    pub fn update(&self, resource: &str, id: &str, f: impl FnOnce(&mut Value)) -> bool {
        self.platform().update(resource, id, f)
    }

    /// Removes an object of the platform; returns whether it was there: see
    /// [`FakeAccount::delete`].
    pub fn delete(&self, resource: &str, id: &str) -> bool {
        self.platform().delete(resource, id)
    }

    /// Replaces the children of a parent of the platform: see [`FakeAccount::set_children`].
    ///
    /// # Panics
    ///
    /// As [`FakeAccount::set_children`].
    pub fn set_children(&self, parent_resource: &str, parent_id: &str, children: Vec<Value>) {
        self.platform()
            .set_children(parent_resource, parent_id, children);
    }

    /// Replaces a subscription's items: `set_children("subscription", ...)`.
    ///
    /// # Panics
    ///
    /// When the subscription does not exist or an item has no string `id`.
    pub fn set_subscription_items(&self, subscription_id: &str, items: Vec<Value>) {
        self.platform()
            .set_subscription_items(subscription_id, items);
    }

    /// Adds a raw event to the platform's log: see [`FakeAccount::push_event`].
    ///
    /// # Panics
    ///
    /// As [`FakeAccount::push_event`].
    pub fn push_event(&self, event: Value) -> String {
        self.platform().push_event(event)
    }

    /// Every event of the platform's log, oldest first: see [`FakeAccount::events`].
    pub fn events(&self) -> Vec<Value> {
        self.platform().events()
    }

    /// One event of the platform's log, past retention or not.
    pub fn event(&self, id: &str) -> Option<Value> {
        self.platform().event(id)
    }

    /// The event recorded most recently in the platform's log.
    pub fn last_event(&self) -> Option<Value> {
        self.platform().last_event()
    }

    /// The platform's account id (`acct_...`): [`StripeData::with_account_id`], else
    /// [`DEFAULT_ACCOUNT_ID`].
    pub fn platform_account_id(&self) -> &str {
        &self.shared.platform.id
    }

    /// The handle on one account: a connected one (also once disconnected: its objects and
    /// events stay readable and editable, though no request reaches them), or the platform by its
    /// own id. Changes through it record events in that account's log, each with
    /// `"account": account_id` for a connected account.
    ///
    /// # Panics
    ///
    /// When `account_id` is neither the platform nor an account ever connected.
    pub fn in_account(&self, account_id: &str) -> FakeAccount<'_> {
        let account = read(&self.shared.accounts).known(account_id).cloned();
        let account =
            account.unwrap_or_else(|| panic!("{account_id} was never connected to the platform"));
        FakeAccount::new(&self.shared.clock, account)
    }

    /// Connects `account_id` while serving, with `data`'s objects (its API key and account id are
    /// ignored). Records no event. Its account object is created at the fake's clock (or a
    /// second after the newest account); an account disconnected before comes back with its
    /// account object and `data`'s objects, its event log started afresh.
    ///
    /// # Panics
    ///
    /// When `account_id` is the platform's or connected already, or `data` has connected
    /// accounts of its own.
    pub fn connect(&self, account_id: &str, data: StripeData) {
        assert!(
            data.connected.is_empty(),
            "connected account {account_id} cannot have connected accounts of its own"
        );
        let now = self.shared.clock.now();
        write(&self.shared.accounts).connect(account_id, data.store, now);
    }

    /// Disconnects an account: from now on its requests answer 403 `account_invalid` and it
    /// leaves `/v1/accounts` (its id still works as a cursor there). Records no event (see
    /// [`FakeStripe::deauthorize`]). Returns whether it was connected.
    pub fn disconnect(&self, account_id: &str) -> bool {
        write(&self.shared.accounts).disconnect(account_id)
    }

    /// Disconnects an account as its owner revoking the platform's access does, and records on
    /// the platform's log the event Stripe sends then: `account.application.deauthorized`, with
    /// `"account": account_id` and the `application` fixture as `data.object`. Returns the event.
    ///
    /// # Panics
    ///
    /// When the account is not connected.
    pub fn deauthorize(&self, account_id: &str) -> Value {
        assert!(
            self.disconnect(account_id),
            "{account_id} is not connected to the platform"
        );
        let now = self.shared.clock.now();
        let application = fixture("application");
        let event = new_event(
            "account.application.deauthorized",
            application,
            None,
            Some(account_id),
            now,
        );
        self.platform().push_event(event.clone());
        event
    }

    /// Applies `f` to the account object of a connected account (or of the platform, by its own
    /// id), as `/v1/accounts/{id}` and `/v1/account` serve it, and records `account.updated` on
    /// the platform's log: `data.object` the account after, `previous_attributes` the old values
    /// of the top-level keys `f` changed, and `"account": account_id` (none for the platform's
    /// own). A changed `created` moves the account in `/v1/accounts`. `f` runs under the accounts'
    /// lock: it must not call back into the fake.
    ///
    /// # Panics
    ///
    /// When the account is neither connected nor the platform, or `f` changes its `id`.
    pub fn update_account(&self, account_id: &str, f: impl FnOnce(&mut Value)) {
        let (before, after) = write(&self.shared.accounts).update(account_id, f);
        let previous = previous_attributes(&before, &after);
        let account = (account_id != self.platform_account_id()).then_some(account_id);
        let now = self.shared.clock.now();
        let event = new_event("account.updated", after, Some(previous), account, now);
        self.platform().push_event(event);
    }

    /// The connected accounts' ids, newest first (as `/v1/accounts` lists them).
    pub fn account_ids(&self) -> Vec<String> {
        read(&self.shared.accounts).ids()
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

    /// Live ids of a resource of the platform, newest first: see [`FakeAccount::ids`].
    pub fn ids(&self, resource: &str) -> Vec<String> {
        self.platform().ids(resource)
    }

    /// One live object of the platform as a retrieve would serve it (`None` once deleted).
    pub fn get(&self, resource: &str, id: &str) -> Option<Value> {
        self.platform().get(resource, id)
    }

    /// How many live objects a resource of the platform has.
    pub fn count(&self, resource: &str) -> usize {
        self.platform().count(resource)
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

    /// Requests received that carried `Stripe-Account: {account_id}`, whatever their answer
    /// (a 403 for an account the platform does not reach counts too).
    pub fn requests_for_account(&self, account_id: &str) -> u64 {
        lock(&self.shared.by_account)
            .get(account_id)
            .copied()
            .unwrap_or(0)
    }

    /// Forgets the request counts.
    pub fn reset_requests(&self) {
        lock(&self.shared.by_path).clear();
        lock(&self.shared.by_account).clear();
        self.shared.requests.store(0, Ordering::Relaxed);
    }

    /// From now on, successful answers to paths starting with `path` (`/v1/customers`) have
    /// the text `from` replaced by `to`, as a misbehaving provider or proxy would answer: a lone
    /// surrogate escape, a number past any range, another object's id.
    pub fn rewrite_answers(&self, path: &str, from: &str, to: &str) {
        self.shared.rewrites.add(path, from, to);
    }

    /// Lifts every [`Self::rewrite_answers`].
    pub fn stop_rewriting(&self) {
        self.shared.rewrites.clear();
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
