//! A stateful fake of Intercom's REST API (version 2.14), speaking its real pagination, scroll,
//! search and rate-limit protocols.
//!
//! [`FakeIntercom`] serves, on a real port, from data built with [`IntercomData`]:
//! `GET /admins` (unpaginated) and `/admins/{id}`; `GET /contacts` and `GET /conversations` (cursor
//! pages through `pages.next.starting_after`, conversations listed without parts) and their
//! retrieves (a conversation with its newest 500 parts); `GET /companies/scroll` (one scroll per
//! workspace, expiring when idle) and `/companies/{id}`; `POST /contacts/search` (dates matched by
//! whole UTC days) and `POST /conversations/search` (to the second). Every answer carries the
//! `X-RateLimit-*` headers, and a spent window answers 429 until it resets.
//!
//! Tests change the data while it serves ([`FakeIntercom::upsert`], [`FakeIntercom::update`],
//! [`FakeIntercom::delete`], [`FakeIntercom::set_parts`]), count requests, inject failures
//! ([`FakeIntercom::fail_next`], [`FakeIntercom::fail_scroll_next`],
//! [`FakeIntercom::stuck_scroll`]), tighten the rate limit and slow it down. Changes are stamped
//! with the fake's clock, real time unless pinned ([`FakeIntercom::set_clock`]). It serves from a
//! thread and runtime of its own, so whatever the test does with its own thread, the fake keeps
//! answering. [`FakeIntercom::notification`] and [`intercom_signature`] build and sign webhook
//! deliveries.
//!
//! ```no_run
//! # async fn demo() {
//! use supasaasy_testkit::fake_intercom::{FakeIntercom, IntercomCounts, IntercomData};
//!
//! let intercom = FakeIntercom::start(IntercomData::generate(&IntercomCounts::default())).await;
//! // point the client at intercom.base_url() with `Authorization: Bearer {intercom.token()}`
//! intercom.fail_scroll_next(1, 500);
//! # }
//! ```

mod cursor;
mod data;
mod error;
mod generate;
mod limits;
mod list;
mod scroll;
mod search;
mod server;
mod store;
mod webhook;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use data::{
    example, IntercomData, API_VERSION, DEFAULT_APP_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TOKEN,
};
pub use generate::IntercomCounts;
pub use limits::{DEFAULT_RATE_LIMIT, DEFAULT_RATE_WINDOW};
pub use list::{CONTACTS_PER_PAGE, CONVERSATIONS_PER_PAGE, MAX_PER_PAGE};
pub use scroll::{DEFAULT_SCROLL_EXPIRY, SCROLL_PAGE_SIZE};
pub use store::MAX_EMBEDDED_PARTS;
pub use webhook::intercom_signature;

use crate::fake_stripe::lock;
use crate::http_server::Server;
use server::Shared;
use store::Resource;

/// A running fake Intercom. Stops when dropped or with [`FakeIntercom::shutdown`].
///
/// Resource names in the helpers are Intercom's object types: `admin`, `company`, `contact`,
/// `conversation`; an unknown name panics. Conversation parts go through
/// [`FakeIntercom::set_parts`] and [`FakeIntercom::parts`].
#[derive(Debug)]
pub struct FakeIntercom {
    /// The store, scroll, limiter and counters, shared with the server thread.
    shared: Arc<Shared>,
    /// The server thread; stops when dropped.
    server: Server,
}

impl FakeIntercom {
    /// Serves `data` on `127.0.0.1` on a free port.
    ///
    /// # Panics
    ///
    /// When no local port can be bound at all or no thread can be started.
    pub async fn start(data: IntercomData) -> FakeIntercom {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(addr, data)
            .await
            .expect("binding 127.0.0.1:0 for the fake Intercom")
    }

    /// Serves `data` on `addr` (port 0 picks a free one), on a thread and tokio runtime of its
    /// own.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound or the server thread cannot start.
    pub async fn start_on(addr: SocketAddr, data: IntercomData) -> std::io::Result<FakeIntercom> {
        let shared = Arc::new(Shared::new(
            data.store,
            data.token,
            data.client_secret,
            data.app_id,
        ));
        let server = Server::spawn("fake-intercom", addr, shared.clone(), server::handle).await?;
        Ok(FakeIntercom { shared, server })
    }

    /// `http://127.0.0.1:PORT`, to use as the Intercom base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The access token the fake accepts (`Authorization: Bearer <token>`).
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The client secret webhook notifications are signed with.
    pub fn client_secret(&self) -> &str {
        &self.shared.client_secret
    }

    /// The workspace id notifications carry as `app_id`.
    pub fn app_id(&self) -> &str {
        &self.shared.app_id
    }

    /// Stops serving and waits until the listener is closed; open connections are dropped.
    pub async fn shutdown(mut self) {
        self.server.shutdown().await;
    }

    /// Inserts or replaces an object, live. Missing `created_at` and `updated_at` are set to the
    /// fake's clock (`updated_at` to `created_at` when only that is given). A conversation's
    /// `conversation_parts` (a `conversation_part.list` or an array) replace its parts; without
    /// that key an existing conversation keeps its parts.
    ///
    /// # Panics
    ///
    /// On an unknown resource, an object without a string `id`, non-integer timestamps or a part
    /// without an id.
    pub fn upsert(&self, resource: &str, object: Value) {
        let resource = Resource::named(resource);
        let now = self.shared.clock.now();
        lock(&self.shared.store).upsert(resource, object, now);
    }

    /// Applies `f` to the object as a retrieve serves it and stores the result; returns whether
    /// it existed. `updated_at` is set to the fake's clock unless `f` changed it (admins have
    /// none). A conversation's parts are not changed this way (use [`FakeIntercom::set_parts`]).
    /// `f` runs under the store's lock: it must not call back into the fake.
    pub fn update(&self, resource: &str, id: &str, f: impl FnOnce(&mut Value)) -> bool {
        let resource = Resource::named(resource);
        let now = self.shared.clock.now();
        let mut store = lock(&self.shared.store);
        let Some(mut object) = store.get(resource, id) else {
            return false;
        };
        let before = object.get("updated_at").cloned();
        f(&mut object);
        if resource != Resource::Admin && object.get("updated_at").cloned() == before {
            if let Some(map) = object.as_object_mut() {
                map.insert("updated_at".into(), Value::from(now));
            }
        }
        store.replace(resource, id, object, now);
        true
    }

    /// Removes an object from lists, scrolls, searches and retrieves (which then answer 404);
    /// returns whether it was there. A conversation takes its parts with it.
    pub fn delete(&self, resource: &str, id: &str) -> bool {
        lock(&self.shared.store).delete(Resource::named(resource), id)
    }

    /// Replaces a conversation's parts (oldest first; a retrieve embeds the newest 500). The
    /// conversation's `updated_at` is left as it is.
    ///
    /// # Panics
    ///
    /// When the conversation does not exist or a part has no id.
    pub fn set_parts(&self, conversation_id: &str, parts: Vec<Value>) {
        lock(&self.shared.store).set_parts(conversation_id, parts);
    }

    /// All of a conversation's parts, oldest first (`None` for an unknown conversation).
    pub fn parts(&self, conversation_id: &str) -> Option<Vec<Value>> {
        lock(&self.shared.store).parts(conversation_id)
    }

    /// Live ids of a resource, in list order (oldest `created_at` first; admins as inserted).
    pub fn ids(&self, resource: &str) -> Vec<String> {
        lock(&self.shared.store).ids(Resource::named(resource))
    }

    /// One live object as a retrieve serves it (a conversation with its newest 500 parts).
    pub fn get(&self, resource: &str, id: &str) -> Option<Value> {
        lock(&self.shared.store).get(Resource::named(resource), id)
    }

    /// How many live objects a resource has.
    pub fn count(&self, resource: &str) -> usize {
        lock(&self.shared.store).count(Resource::named(resource))
    }

    /// The fake's clock, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.shared.clock.now()
    }

    /// Pins the fake's clock to `unix_secs`, or with `None` lets it follow real time again.
    /// Only data timestamps and notifications read it; rate-limit windows and scroll expiry
    /// follow real time.
    pub fn set_clock(&self, unix_secs: Option<i64>) {
        self.shared.clock.set(unix_secs);
    }

    /// Moves the fake's clock by `secs` (back when negative), pinning it there.
    pub fn advance_clock(&self, secs: i64) {
        self.shared.clock.advance(secs);
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

    /// Requests received with this `Intercom-Version` header value (`""`: without the header).
    pub fn requests_with_version(&self, version: &str) -> u64 {
        lock(&self.shared.versions)
            .get(version)
            .copied()
            .unwrap_or(0)
    }

    /// Forgets the request counts (not the 429 count).
    pub fn reset_requests(&self) {
        lock(&self.shared.by_path).clear();
        lock(&self.shared.versions).clear();
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

    /// Answers the next `n` requests, whatever their endpoint, with `status` and an Intercom
    /// error body instead of serving them. They do not count against the rate limit. Replaces any
    /// failures still queued.
    pub fn fail_next(&self, n: u64, status: u16) {
        let mut faults = lock(&self.shared.faults);
        faults.remaining = n;
        faults.status = status;
    }

    /// Delays every answer by `latency` (without holding up other requests).
    pub fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.shared.latency_micros.store(micros, Ordering::Relaxed);
    }

    /// Allows `limit` requests per `window` (real time) and starts a fresh window. The default is
    /// [`DEFAULT_RATE_LIMIT`] per [`DEFAULT_RATE_WINDOW`].
    pub fn set_rate_limit(&self, limit: u64, window: Duration) {
        lock(&self.shared.limiter).configure(limit, window);
    }

    /// Ends the current rate-limit window now, so the next request starts a full one.
    pub fn reset_rate_limit(&self) {
        lock(&self.shared.limiter).reset();
    }

    /// How many 429 answers the fake has sent (from the limiter or injected).
    pub fn rate_limited(&self) -> u64 {
        self.shared.rate_limited.load(Ordering::Relaxed)
    }

    /// How long an unused scroll stays open ([`DEFAULT_SCROLL_EXPIRY`] unless set).
    pub fn set_scroll_expiry(&self, expiry: Duration) {
        lock(&self.shared.scrolls).set_expiry(expiry);
    }

    /// Answers the next `n` `GET /companies/scroll` requests with `status`; a 500 also loses the
    /// open scroll, which must then be started again. Replaces scroll failures still queued.
    pub fn fail_scroll_next(&self, n: u64, status: u16) {
        lock(&self.shared.scrolls).fail_next(n, status);
    }

    /// While set, the scroll serves the same page with the same `scroll_param` forever.
    pub fn stuck_scroll(&self, stuck: bool) {
        lock(&self.shared.scrolls).stuck(stuck);
    }

    /// Expires the open scroll now, as if it had been idle for the expiry.
    pub fn expire_scroll(&self) {
        lock(&self.shared.scrolls).expire();
    }

    /// The open scroll's `scroll_param`, if a scroll is open and has not expired.
    pub fn open_scroll(&self) -> Option<String> {
        lock(&self.shared.scrolls).open_param(Instant::now())
    }

    /// Makes search lag `secs` behind the fake's clock: objects whose `updated_at` is later than
    /// now minus `secs` are not found yet, as Intercom's search index trails its writes. 0 (the
    /// default) finds everything.
    pub fn set_search_lag(&self, secs: i64) {
        self.shared.search_lag.store(secs, Ordering::Relaxed);
    }

    /// A webhook notification for `item` on `topic` (`contact.user.created`,
    /// `conversation.admin.replied`...), as Intercom delivers it: `{"type":
    /// "notification_event", "app_id", "id": "notif_...", "topic", "delivery_status": null,
    /// "delivery_attempts": 1, "delivered_at": 0, "first_sent_at", "created_at", "data": {"type":
    /// "notification_event_data", "item"}, "self": null}`, stamped with the fake's clock. Each
    /// call gets a new id.
    pub fn notification(&self, topic: &str, item: Value) -> Value {
        let n = self.shared.notifications.fetch_add(1, Ordering::Relaxed);
        let id = webhook::notification_id(n);
        webhook::notification(&self.shared.app_id, id, topic, item, self.now())
    }

    /// The `X-Hub-Signature` value for `body` under this fake's client secret.
    pub fn sign(&self, body: &[u8]) -> String {
        intercom_signature(&self.shared.client_secret, body)
    }
}
