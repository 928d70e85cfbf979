//! The contract between the supasaasy daemon and a provider connector.
//!
//! A connector knows one provider's HTTP protocol (authentication, pagination, error shapes) and
//! nothing of Postgres, the job queue or the daemon's config file. The daemon asks it for one page of
//! a resource at a time, starting from an opaque cursor the connector handed out earlier, and writes
//! the records of that page in one transaction together with the next cursor. A connector must
//! therefore be restartable from any cursor it returned: a crash between two pages resumes with the
//! cursor of the last committed page.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub mod answer;
pub mod budget;
pub mod hex;
pub mod segment;
pub mod surrogates;
pub mod turns;

/// A resource a connector can sync, as named in `sync_resources` and `resource_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// The name operators use (`customer`, `subscription`).
    pub name: &'static str,
    /// The collection key of the resource's own rows in `supasaasy.entities`.
    pub collection_key: &'static str,
    /// Collection keys of rows that ride along with this resource (a subscription's items). A
    /// complete run of the resource also sweeps these collections.
    pub child_collection_keys: &'static [&'static str],
    /// The field of a child's payload naming its parent, when the provider may serve only part
    /// of a parent's children (Intercom's 500 newest conversation parts): a complete run then
    /// tombstones the children of the parents it swept, never a child only because the run did
    /// not see it. `None`: a run sees every child, and sweeps those it did not see.
    pub children_swept_with_parent: Option<&'static str>,
    /// At most one run of this resource per app at a time, across every daemon sharing the
    /// database (a provider that allows one open scroll per account).
    pub exclusive: bool,
    /// What an incremental run of the resource does.
    pub incremental: Incremental,
    /// The listing honours [`ListOptions::created_lt`] and lists newest first, so a full pass can
    /// walk several `created` ranges at once; when false the connector may ignore `created_lt`.
    pub splittable: bool,
    /// The provider lists the resource at all. When false its objects come only from events and
    /// from inside other objects, and a full run lists nothing.
    pub listed: bool,
    /// A complete full run may tombstone the rows it did not see. False when the listing hides
    /// live objects (open ones only) or there is none, or when an object that leaves the listing
    /// still exists.
    pub sweep: bool,
    /// Listed once per mirrored object of this collection (a customer's tax ids): a run walks
    /// the parents the mirror holds and passes each as [`ListOptions::parent`].
    pub per_parent: Option<&'static str>,
    /// [`Connector::fetch_object`] can fetch one object. When false, two changes of one object in
    /// the same second are ordered by the rule that a deletion is final.
    pub fetchable: bool,
    /// Its objects are the accounts connected to the app (Stripe Connect): their rows are the
    /// app's own, and once a job's run of it completes the job syncs its other resources in each
    /// account it listed.
    pub connected_accounts: bool,
}

/// What an incremental run of a resource does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incremental {
    /// Reads the provider's events since the saved cursor ([`Connector::list_events`]).
    Events,
    /// Walks the whole listing again: a full pass, with its sweep.
    FullPass,
    /// The provider has no events for it: lists the objects created since the last run (reaching
    /// a trailing window further back), then fetches again the mirrored objects whose payload's
    /// `field` still reads `value` (the ones that may still change).
    Trailing {
        /// The payload field that says an object may still change (`status`).
        field: &'static str,
        /// Its value while it may (`pending`).
        value: &'static str,
    },
}

impl Resource {
    /// Every collection key a run of this resource writes, its own first.
    pub fn collection_keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        std::iter::once(self.collection_key).chain(self.child_collection_keys.iter().copied())
    }
}

/// What the daemon knows of one configured app instance, handed to the connector's constructor.
#[derive(Clone)]
pub struct AppSettings {
    /// The app's key (`stripe_prod`), for messages only.
    pub app_key: String,
    /// The provider API key, read from the environment by the daemon.
    pub api_key: Secret,
    /// The provider's base URL (`https://api.stripe.com`, a regional Intercom host, a fake in tests).
    pub base_url: String,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// At most this many requests start per second (`None`: no budget). The connector spaces its
    /// requests by it before sending, whichever task or webhook sends them.
    pub requests_per_second: Option<f64>,
    /// Told of every request the connector sends, so the daemon can count them without the
    /// connector knowing how.
    pub observer: Arc<dyn RequestObserver>,
}

impl AppSettings {
    /// Settings with the daemon's default timeouts (30 s per request, 10 s to connect) and no
    /// observer; change the public fields for anything else.
    pub fn new(app_key: impl Into<String>, api_key: Secret, base_url: impl Into<String>) -> Self {
        AppSettings {
            app_key: app_key.into(),
            api_key,
            base_url: base_url.into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            requests_per_second: None,
            observer: Arc::new(NoObserver),
        }
    }

    /// The same settings, reporting requests to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> Self {
        self.observer = observer;
        self
    }
}

/// Hears about a connector's requests to its provider, at the connector's one HTTP choke point.
/// Called on the request path: implementations must be cheap and must not block.
pub trait RequestObserver: Send + Sync {
    /// A request got an answer with this HTTP `status` after `elapsed`, or none at all (`None`:
    /// a transport failure such as a refused connection or a timeout).
    fn answered(&self, status: Option<u16>, elapsed: Duration) {
        let _ = (status, elapsed);
    }

    /// A request waited `waited` before it was sent, for the provider's rate limit.
    fn rate_limited(&self, waited: Duration) {
        let _ = waited;
    }
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl RequestObserver for NoObserver {}

/// A secret string that never prints: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Options that shape a listing; the same for every page of one walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// The connected account whose objects are listed (Stripe Connect: sent as `Stripe-Account`);
    /// `None` for the app's own.
    pub account: Option<String>,
    /// The parent whose children are listed, for a resource listed per parent
    /// ([`Resource::per_parent`]).
    pub parent: Option<String>,
    /// Only objects created at or after this Unix time (`sync_from`, or a range's lower bound).
    pub created_gte: Option<i64>,
    /// Only objects created before this Unix time (a range's exclusive upper bound); honoured by
    /// the resources marked [`Resource::splittable`].
    pub created_lt: Option<i64>,
}

/// One provider object as fetched, ready for the mirror.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The collection the row belongs to (`stripe_customer`, `stripe_subscription_item`).
    pub collection_key: &'static str,
    /// The provider's id of the object.
    pub external_id: String,
    /// The object exactly as the provider sent it.
    pub payload: Payload,
    /// When the provider created the object (Unix seconds), when it says.
    pub created: Option<i64>,
    /// The object is archived (inactive) at the provider but still exists.
    pub archived: bool,
}

/// A provider object's JSON: parsed when something had to look inside it, or kept as the text the
/// provider sent when only a few fields were read out of it (a listed page's plain objects, which
/// then cost no tree of their own on the way to the database).
#[derive(Debug, Clone)]
pub enum Payload {
    /// The object as a tree.
    Parsed(serde_json::Value),
    /// The object's JSON text, as received; valid JSON.
    Raw(Box<serde_json::value::RawValue>),
}

impl Payload {
    /// The object as a tree: borrowed when parsed, parsed from the text otherwise.
    ///
    /// # Panics
    ///
    /// Never: raw text is valid JSON by construction.
    #[must_use]
    pub fn value(&self) -> std::borrow::Cow<'_, serde_json::Value> {
        match self {
            Payload::Parsed(value) => std::borrow::Cow::Borrowed(value),
            Payload::Raw(raw) => std::borrow::Cow::Owned(
                serde_json::from_str(raw.get()).expect("raw payloads are valid JSON"),
            ),
        }
    }
}

impl Payload {
    /// About how many bytes the object's JSON takes: exact for raw text, a guess for a tree
    /// (its top-level fields times a typical field's size).
    #[must_use]
    pub fn len_hint(&self) -> usize {
        match self {
            Payload::Raw(raw) => raw.get().len(),
            Payload::Parsed(serde_json::Value::Object(map)) => 64 * map.len().max(1),
            Payload::Parsed(_) => 64,
        }
    }
}

impl From<serde_json::Value> for Payload {
    fn from(value: serde_json::Value) -> Self {
        Payload::Parsed(value)
    }
}

/// Serialized as the object itself: the raw text goes out verbatim.
impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Payload::Parsed(value) => value.serialize(serializer),
            Payload::Raw(raw) => raw.serialize(serializer),
        }
    }
}

/// Equal when the objects are, however they are held.
impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        match (self, other) {
            (Payload::Parsed(a), b) => *b == *a,
            (a, Payload::Parsed(b)) => *a == *b,
            (a, b) => a.value() == b.value(),
        }
    }
}

impl PartialEq<serde_json::Value> for Payload {
    fn eq(&self, other: &serde_json::Value) -> bool {
        *self.value() == *other
    }
}

/// One page of a resource.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The records of the page, children included (a subscription's items follow it).
    pub records: Vec<Record>,
    /// The cursor to pass for the next page; `None` when this was the last page.
    pub next_cursor: Option<String>,
    /// HTTP requests the page took (a subscription with many items takes more than one).
    pub requests: u32,
    /// Objects of the page left out because the provider answered something other than what was
    /// asked (a fetch answering another object): the mirror records them as skipped, keeps their
    /// rows as they were, and the next run tries them again.
    pub skipped: Vec<Skipped>,
}

/// An object a page left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The collection its row is in.
    pub collection_key: &'static str,
    /// The provider's id.
    pub external_id: String,
    /// What went wrong, for the operator.
    pub reason: String,
}

/// Why a provider call failed, classified next to the HTTP call that got it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// Worth retrying as is: 5xx, timeouts, connection errors, `Stripe-Should-Retry: true`.
    #[error("{message}")]
    Retryable {
        /// What happened, for the operator.
        message: String,
    },
    /// The provider asked us to slow down; retry after the delay when it gave one.
    #[error("{message}")]
    RateLimited {
        /// What happened, for the operator.
        message: String,
        /// How long the provider asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The provider refused our credentials (401, 403): nothing will work for this app until the
    /// key is fixed, so it counts against the app's circuit like an outage.
    #[error("{message}")]
    Rejected {
        /// What happened, for the operator.
        message: String,
    },
    /// Retrying will not help: an invalid request, an unknown resource.
    #[error("{message}")]
    Fatal {
        /// What happened, for the operator.
        message: String,
    },
    /// A connected account refused the request (Stripe Connect: access revoked, account gone):
    /// that account's work fails, the app's other accounts go on, and the app's circuit is not
    /// touched.
    #[error("{message}")]
    AccountRefused {
        /// What happened, for the operator, naming the account.
        message: String,
    },
    /// The provider refused the `created` filters of a listing (a Stripe-compatible API that does
    /// not implement them): the caller may list the resource again without them.
    #[error("{message}")]
    FilterRefused {
        /// What happened, for the operator.
        message: String,
    },
}

impl ConnectorError {
    /// True when the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::Retryable { .. } | ConnectorError::RateLimited { .. }
        )
    }

    /// True when the error says the provider is failing this app as a whole (5xx, timeouts,
    /// transport errors, rejected credentials), as opposed to one bad request or a rate limit.
    pub fn is_provider_failure(&self) -> bool {
        matches!(
            self,
            ConnectorError::Retryable { .. } | ConnectorError::Rejected { .. }
        )
    }

    /// What happened, for the operator.
    pub fn message(&self) -> &str {
        match self {
            ConnectorError::Retryable { message }
            | ConnectorError::RateLimited { message, .. }
            | ConnectorError::Rejected { message }
            | ConnectorError::Fatal { message }
            | ConnectorError::AccountRefused { message }
            | ConnectorError::FilterRefused { message } => message,
        }
    }

    /// The same error with its message rewritten (to scrub a secret from it).
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> ConnectorError {
        match self {
            ConnectorError::Retryable { message } => ConnectorError::Retryable {
                message: f(message),
            },
            ConnectorError::RateLimited {
                message,
                retry_after,
            } => ConnectorError::RateLimited {
                message: f(message),
                retry_after,
            },
            ConnectorError::Rejected { message } => ConnectorError::Rejected {
                message: f(message),
            },
            ConnectorError::Fatal { message } => ConnectorError::Fatal {
                message: f(message),
            },
            ConnectorError::FilterRefused { message } => ConnectorError::FilterRefused {
                message: f(message),
            },
            ConnectorError::AccountRefused { message } => ConnectorError::AccountRefused {
                message: f(message),
            },
        }
    }
}

/// Why a webhook request was refused; the daemon answers 401 or 400 and writes nothing.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Missing, malformed, stale or wrong signature: 401.
    #[error("{0}")]
    BadSignature(String),
    /// A signed body that is not an event the connector can read: 400.
    #[error("{0}")]
    Malformed(String),
}

/// The complete set of an object's children as of the parent's state (a subscription's items):
/// rows of `collection_key` whose payload's `parent_field` names the parent and that are not among
/// `records` left the parent and are tombstoned.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildSet {
    /// The children's collection (`stripe_subscription_item`).
    pub collection_key: &'static str,
    /// The field of a child's payload holding the parent's id (`subscription`).
    pub parent_field: &'static str,
    /// The children the provider served.
    pub records: Vec<Record>,
    /// The provider served every child the parent has: the others left it. False when it serves
    /// only part of them (Intercom's 500 newest conversation parts): those served are written
    /// and none is tombstoned.
    pub complete: bool,
}

/// One object's new state, from an event or a fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The resource the object belongs to (`customer`), to fetch it again when the order of two
    /// changes cannot be known.
    pub resource: &'static str,
    /// The object (for a deletion, whatever the provider sent: at least its id).
    pub record: Record,
    /// The object is gone at the provider: its row becomes a tombstone.
    pub deleted: bool,
    /// The object's children, when the change carries all of them.
    pub children: Option<ChildSet>,
}

/// A provider event (a webhook delivery or an entry of an events list), verified and parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The provider's event id; a second delivery of the same id changes nothing.
    pub id: String,
    /// The provider's event type (`customer.updated`).
    pub event_type: String,
    /// When the provider created the event (Unix seconds): the time of the state it carries.
    pub created: i64,
    /// What the event changes; empty when the type is not one the connector maps.
    pub changes: Vec<Change>,
    /// The type is not mapped, or the event cannot be applied: acknowledge and ignore.
    pub ignored: bool,
    /// Why an event of a mapped type is ignored (its object is not what its type promises), for
    /// the operator; `None` for a type the connector does not map.
    pub ignored_reason: Option<String>,
    /// The connected account the event happened in (a Stripe Connect event's `account`); `None`
    /// for the app's own.
    pub account: Option<String>,
    /// Whether the event happened in live mode, when the provider says.
    pub livemode: Option<bool>,
    /// The event says the app lost access to `account` (Stripe's
    /// `account.application.deauthorized`): its tasks stop, its rows stay.
    pub deauthorizes: bool,
}

/// The time window of an events listing: `created_gt < created <= created_lte`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventWindow {
    /// Exclusive lower bound (Unix seconds).
    pub created_gt: i64,
    /// Inclusive upper bound (Unix seconds).
    pub created_lte: i64,
}

/// One page of an events listing.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    /// The events of the page (in the provider's order).
    pub events: Vec<Event>,
    /// The cursor of the next page; `None` after the last.
    pub next_cursor: Option<String>,
    /// HTTP requests the page took.
    pub requests: u32,
}

/// A provider connector: one instance per configured app.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The connector's name in the config (`stripe`).
    fn kind(&self) -> &'static str;

    /// The resources this connector syncs, in the order a full sync runs them.
    fn resources(&self) -> &'static [Resource];

    /// The provider API version this connector pins, recorded on every row it fetches.
    fn api_version(&self) -> &str;

    /// Fetches one page of `resource` starting at `cursor` (`None` for the first page).
    ///
    /// # Errors
    ///
    /// A [`ConnectorError`] saying whether the page is worth asking for again.
    async fn list_page(
        &self,
        resource: &str,
        cursor: Option<&str>,
        options: &ListOptions,
    ) -> Result<Page, ConnectorError>;

    /// The request header carrying the webhook signature (lower case: `stripe-signature`).
    fn signature_header(&self) -> &'static str;

    /// Checks a webhook's signature over the raw body, in constant time, at Unix time `now`.
    /// Called before anything is parsed or written.
    ///
    /// # Errors
    ///
    /// [`WebhookError::BadSignature`] for a missing, malformed, stale or wrong signature.
    fn verify_webhook(
        &self,
        secret: &Secret,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), WebhookError>;

    /// Checks what of a webhook's signature needs no body: the header is there and readable, and
    /// its timestamp, when the provider signs one, lies within tolerance of Unix time `now`. Cheap
    /// (no MAC): the daemon calls it before it reads a body, so a delivery that cannot verify
    /// costs it no memory. [`Connector::verify_webhook`] still checks all of it.
    ///
    /// # Errors
    ///
    /// [`WebhookError::BadSignature`] for a missing, malformed or stale signature header.
    fn check_signature_header(&self, signature: Option<&str>, now: i64)
        -> Result<(), WebhookError>;

    /// Parses a verified webhook body into an event.
    ///
    /// # Errors
    ///
    /// [`WebhookError::Malformed`] when the body is not an event.
    fn parse_webhook(&self, body: &[u8]) -> Result<Event, WebhookError>;

    /// Fetches one object's current state (the truth when two changes cannot be ordered), in
    /// `account` (a connected account; `None` for the app's own). An object the provider no longer
    /// has comes back as a deletion.
    ///
    /// # Errors
    ///
    /// A [`ConnectorError`] saying whether to try again.
    async fn fetch_object(
        &self,
        resource: &str,
        id: &str,
        account: Option<&str>,
    ) -> Result<Change, ConnectorError>;

    /// Fetches one page of the events that change `resource` within `window`, from `cursor`, in
    /// `account` (a connected account; `None` for the app's own).
    ///
    /// # Errors
    ///
    /// A [`ConnectorError`] saying whether to try again.
    async fn list_events(
        &self,
        resource: &str,
        cursor: Option<&str>,
        window: &EventWindow,
        account: Option<&str>,
    ) -> Result<EventPage, ConnectorError>;

    /// The id of the account the app's key belongs to (Stripe's `GET /v1/account`), which keys the
    /// app's own rows beside its connected accounts'; empty for a provider without accounts.
    ///
    /// # Errors
    ///
    /// A [`ConnectorError`] saying whether to try again.
    async fn own_account(&self) -> Result<String, ConnectorError> {
        Ok(String::new())
    }

    /// Whether the app's key is a live-mode key (`Some(false)` for a test key), when the provider
    /// has modes: an event of the other mode is not the app's.
    fn live_mode(&self) -> Option<bool> {
        None
    }
}

/// What the daemon needs to know of one provider, in one value: each connector crate exports one,
/// and the daemon keeps the list, so a new provider is its crate and one line of that list.
pub struct Provider {
    /// The name in `connector = "..."` (`stripe`).
    pub name: &'static str,
    /// The resources, in the order a full sync runs them.
    pub resources: &'static [Resource],
    /// Request headers carrying a webhook's signature (lower case): never logged.
    pub signature_headers: &'static [&'static str],
    /// The `service` of the provider's integration events.
    pub service: &'static str,
    /// How many days the provider's events API keeps events; an incremental cursor older than
    /// that runs a full sync instead. `None`: the events are searched, not kept for a while.
    pub event_retention_days: Option<i64>,
    /// The provider's public API host.
    pub default_base_url: &'static str,
    /// The request budget of an app that sets no `requests_per_second`, from its API key.
    pub default_requests_per_second: fn(&str) -> Option<f64>,
    /// Builds the connector of one app.
    pub build: fn(AppSettings) -> Result<Arc<dyn Connector>, ConnectorError>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Provider {
    fn eq(&self, other: &Provider) -> bool {
        self.name == other.name
    }
}

/// Finds a resource by name in a connector's list.
pub fn find_resource(connector: &dyn Connector, name: &str) -> Option<Resource> {
    connector
        .resources()
        .iter()
        .find(|r| r.name == name)
        .copied()
}
