//! The Stripe connector: lists customers, products, prices, plans and subscriptions (each
//! subscription followed by its items) one page at a time through Stripe's REST API, verifies and
//! reads webhook deliveries, fetches single objects and lists the events of a time window.
//!
//! It knows Stripe's HTTP protocol and nothing of Postgres or the queue. Invariants:
//!
//! - every request pins [`STRIPE_API_VERSION`], so payloads have one shape whatever the account's
//!   default version;
//! - a cursor is the id of the last object of a page (Stripe's `starting_after`), so any page can be
//!   fetched again from the cursor handed out with the page before it;
//! - a subscription's items follow it in the same page and are complete: when Stripe truncates the
//!   embedded `items` list, all items are listed from `/v1/subscription_items` instead;
//! - a webhook is verified (see `webhook`) before a byte of it is parsed, and an event becomes the
//!   same records a listing would give (see `events`);
//! - nothing is retried here: each failure is classified next to the HTTP call (see `client`) and the
//!   daemon decides whether and when to ask again.

mod client;
mod events;
mod listing;
pub mod resources;
mod webhook;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use serde_json::Value;
use supasaasy_connector::segment::path_segment;
use supasaasy_connector::{
    AppSettings, Change, Connector, ConnectorError, Event, EventPage, EventWindow, ListOptions,
    Page, Provider, Record, Resource, Secret, WebhookError,
};

use crate::client::StripeHttp;
use crate::listing::{Embedded, Malformed};
use crate::resources::{Child, Parent, StripeResource};

pub use crate::events::is_account_id;
pub use crate::resources::{RESOURCES, TABLE};
pub use crate::webhook::{check_header, sign, verify, SIGNATURE_TOLERANCE_SECS};

/// The Stripe API version every request pins and every fetched row records.
pub const STRIPE_API_VERSION: &str = "2025-08-27.basil";

/// Stripe, as the daemon's list of providers knows it.
pub static PROVIDER: Provider = Provider {
    name: "stripe",
    resources: &RESOURCES,
    signature_headers: &["stripe-signature"],
    service: "stripe",
    event_retention_days: Some(30),
    default_base_url: "https://api.stripe.com",
    default_requests_per_second,
    build: |settings| Ok(Arc::new(StripeConnector::new(settings)?)),
};

/// Stripe allows live keys 100 requests a second and test keys 25.
fn default_requests_per_second(api_key: &str) -> Option<f64> {
    Some(if api_key.contains("_live_") {
        100.0
    } else {
        25.0
    })
}

/// The connector of one Stripe app (one Stripe account and key).
pub struct StripeConnector {
    /// The authenticated HTTP client of the app.
    http: StripeHttp,
    /// Whether the key is a live key (`sk_live_`, `rk_live_`) or a test key; `None` for a key of
    /// another shape (a Stripe-compatible fake's).
    live: Option<bool>,
}

/// The mode of a Stripe key, read from its prefix.
fn key_mode(api_key: &str) -> Option<bool> {
    match api_key.split('_').nth(1) {
        Some("live") if api_key.starts_with("sk_") || api_key.starts_with("rk_") => Some(true),
        Some("test") if api_key.starts_with("sk_") || api_key.starts_with("rk_") => Some(false),
        _ => None,
    }
}

impl StripeConnector {
    /// Builds the connector of one app: an HTTP client with the app's timeouts, its key as a bearer
    /// token and the pinned `Stripe-Version`. A trailing slash on the base URL is ignored.
    ///
    /// # Errors
    ///
    /// [`ConnectorError::Fatal`] when the base URL is not an http(s) URL, the API key cannot be sent
    /// in a header, or the HTTP client cannot be built.
    pub fn new(settings: AppSettings) -> Result<Self, ConnectorError> {
        let live = key_mode(settings.api_key.expose());
        Ok(StripeConnector {
            http: StripeHttp::new(settings)?,
            live,
        })
    }

    /// Lists every child of one parent from the child list, with the number of requests it took.
    async fn child_list(
        &self,
        row: &StripeResource,
        child: &Child,
        parent_id: &str,
        account: Option<&str>,
    ) -> Result<(Vec<Value>, u32), ConnectorError> {
        let mut items = Vec::new();
        let mut requests = 0;
        let mut cursor: Option<String> = None;
        loop {
            let (path, query) = listing::child_query(row, child, parent_id, cursor.as_deref())
                .map_err(|err| self.malformed(&format!("GET /v1/{}", row.path), err))?;
            let request = format!("GET /v1/{path}");
            let list = self.http.get_list(&path, &query, account).await?;
            requests += 1;
            let next = list
                .next_cursor()
                .map_err(|err| self.malformed(&request, err))?;
            for item in &list.data {
                items.push(listing::parsed(item).map_err(|err| self.malformed(&request, err))?);
            }
            match next {
                None => return Ok((items, requests)),
                // A cursor that does not move would page forever.
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return Err(self.malformed(
                        &request,
                        Malformed(format!("the child list of {parent_id} repeats {next}")),
                    ))
                }
                Some(next) => cursor = Some(next),
            }
        }
    }

    /// Lists every child of a parent whose embedded list was truncated, as records.
    async fn listed_children(
        &self,
        row: &StripeResource,
        request: &str,
        parent_id: &str,
        records: &mut Vec<Record>,
        account: Option<&str>,
    ) -> Result<u32, ConnectorError> {
        let Some(child) = row.child else {
            return Ok(0);
        };
        let (items, requests) = self.child_list(row, &child, parent_id, account).await?;
        for item in items {
            records.push(
                listing::child_record(&child, parent_id, item)
                    .map_err(|err| self.malformed(request, err))?,
            );
        }
        Ok(requests)
    }

    /// Fetches one object and turns it into a change; see [`Connector::fetch_object`].
    async fn fetch_change(
        &self,
        resource: &str,
        id: &str,
        account: Option<&str>,
    ) -> Result<Change, ConnectorError> {
        let row = self.row(resource)?;
        let Some(path) = row.retrieve else {
            return Err(ConnectorError::Fatal {
                message: format!(
                    "Stripe has no way to fetch one {resource} (app {})",
                    self.http.app_key()
                ),
            });
        };
        let Some(segment) = path_segment(id) else {
            return Err(ConnectorError::Fatal {
                message: format!(
                    "cannot fetch {resource} {:?} for app {}: not an id a request path can hold",
                    id.chars().take(80).collect::<String>(),
                    self.http.app_key()
                ),
            });
        };
        let request = format!("GET /v1/{path}/{segment}");
        let query = listing::fetch_query(row);
        let Some(object) = self
            .http
            .get_object(path, &segment, &query, account)
            .await?
        else {
            let stub = json!({"id": id, "object": row.object, "deleted": true});
            return self.first_change(&request, row, stub, true);
        };
        if object.get("id").and_then(Value::as_str) != Some(id) {
            return Err(self.malformed(&request, Malformed("the answer is another object".into())));
        }
        // A deleted customer is still retrievable, as a stub that says so.
        let deleted = object.get("deleted") == Some(&Value::Bool(true));
        let truncated = row.child.filter(|child| {
            !deleted && listing::embedded_children(child, &object) == Embedded::Truncated
        });
        let mut change = self.first_change(&request, row, object, deleted)?;
        if let Some(child) = truncated {
            let (items, _) = self.child_list(row, &child, id, account).await?;
            let children = events::child_set(&child, id, items)
                .map_err(|err| self.malformed(&request, err))?;
            change.children = Some(children);
        }
        Ok(change)
    }

    /// The change of the object itself (not of what it carries).
    fn first_change(
        &self,
        request: &str,
        row: &'static StripeResource,
        object: Value,
        deleted: bool,
    ) -> Result<Change, ConnectorError> {
        events::object_changes(row, object, deleted)
            .map_err(|err| self.malformed(request, err))?
            .into_iter()
            .next()
            .ok_or_else(|| self.malformed(request, Malformed("no change".into())))
    }

    /// Lists one page of the events of `resource`; see [`Connector::list_events`].
    async fn events_page(
        &self,
        resource: &str,
        cursor: Option<&str>,
        window: &EventWindow,
        account: Option<&str>,
    ) -> Result<EventPage, ConnectorError> {
        let row = self.row(resource)?;
        if row.events.is_empty() {
            return Err(ConnectorError::Fatal {
                message: format!(
                    "Stripe sends no events of {resource} (app {}): its incremental runs list it",
                    self.http.app_key()
                ),
            });
        }
        let request = "GET /v1/events";
        let query = events::events_query(row.events, cursor, window);
        let list = self.http.get_list("events", &query, account).await?;
        let next_cursor = list
            .next_cursor()
            .map_err(|err| self.malformed(request, err))?;
        let events = list
            .data
            .iter()
            .map(|event| listing::parsed(event).and_then(events::parse_event))
            .collect::<Result<Vec<Event>, _>>()
            .map_err(|err| self.malformed(request, err))?;
        Ok(EventPage {
            events,
            next_cursor,
            requests: 1,
        })
    }

    /// The row of a resource this connector syncs.
    fn row(&self, resource: &str) -> Result<&'static StripeResource, ConnectorError> {
        StripeResource::named(resource).ok_or_else(|| self.unknown(resource))
    }

    fn unknown(&self, resource: &str) -> ConnectorError {
        ConnectorError::Fatal {
            message: format!(
                "Stripe connector of app {} has no resource {resource:?} (known: {})",
                self.http.app_key(),
                TABLE.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    fn malformed(&self, request: &str, err: Malformed) -> ConnectorError {
        ConnectorError::Retryable {
            message: format!(
                "Stripe sent a malformed answer for app {} on {request}: {}",
                self.http.app_key(),
                err.0
            ),
        }
    }
}

impl fmt::Debug for StripeConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConnector")
            .field("app_key", &self.http.app_key())
            .field("base_url", &self.http.base_url())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Connector for StripeConnector {
    fn kind(&self) -> &'static str {
        "stripe"
    }

    fn resources(&self) -> &'static [Resource] {
        &RESOURCES
    }

    fn api_version(&self) -> &str {
        STRIPE_API_VERSION
    }

    /// Lists one page of up to 100 objects, newest first. A parent's page also lists the
    /// children of any parent whose embedded list is truncated, so it may take several requests.
    /// A resource listed per customer lists `options.parent`'s; one without a list answers an
    /// empty last page. Where the list takes no `created` filter, objects created before
    /// `options.created_gte` are left out here.
    ///
    /// # Errors
    ///
    /// [`ConnectorError::Fatal`] for a resource this connector does not sync (or one listed per
    /// customer without a customer), [`ConnectorError::FilterRefused`] when the list refuses the
    /// `created` filters, otherwise the classification of the first request that failed; an
    /// answer that is not a list, or an object without an id, is a malformed answer naming the
    /// app, the resource and the request.
    async fn list_page(
        &self,
        resource: &str,
        cursor: Option<&str>,
        options: &ListOptions,
    ) -> Result<Page, ConnectorError> {
        let row = self.row(resource)?;
        let parent = match row.parent {
            Parent::Unlisted => return Ok(Page::default()),
            Parent::None => None,
            Parent::Customer => {
                let app = self.http.app_key();
                let customer = options
                    .parent
                    .as_deref()
                    .ok_or_else(|| ConnectorError::Fatal {
                        message: format!(
                        "{resource} of app {app} is listed per customer, and no customer was given"
                    ),
                    })?;
                let segment = path_segment(customer).ok_or_else(|| ConnectorError::Fatal {
                    message: format!(
                        "{resource} of app {app}: customer {:?} is not an id a request path can hold",
                        customer.chars().take(80).collect::<String>()
                    ),
                })?;
                Some(segment)
            }
        };
        let path = row.list_path(parent.as_deref());
        let request = format!("GET /v1/{path} ({resource})");
        let query = listing::list_query(row, cursor, options);
        let account = options.account.as_deref();
        let list = match self.http.get_list_of(&path, &query, account).await? {
            Ok(list) => list,
            // A customer the mirror still holds but Stripe no longer has: nothing under it.
            Err(_) if parent.is_some() => {
                return Ok(Page {
                    requests: 1,
                    ..Page::default()
                })
            }
            Err(missing) => return Err(missing),
        };
        let mut requests = 1;
        let next_cursor = list
            .next_cursor()
            .map_err(|err| self.malformed(&request, err))?;

        let mut records: Vec<Record> = Vec::with_capacity(list.data.len());
        for object in list.data {
            let left = listing::raw_records(row, object, &mut records)
                .map_err(|err| self.malformed(&request, err))?;
            if let listing::Left::Children(parent_id) = left {
                requests += self
                    .listed_children(row, &request, &parent_id, &mut records, account)
                    .await?;
            }
        }
        if let (false, Some(from)) = (row.created_filter, options.created_gte) {
            records.retain(|r| r.created.is_none_or(|created| created >= from));
        }
        Ok(Page {
            records,
            next_cursor,
            requests,
            ..Page::default()
        })
    }

    fn signature_header(&self) -> &'static str {
        "stripe-signature"
    }

    /// Checks `Stripe-Signature` (see [`verify`]): any `v1` may match, keyed by the whole
    /// `whsec_` secret, within [`SIGNATURE_TOLERANCE_SECS`] of `now`.
    ///
    /// # Errors
    ///
    /// [`WebhookError::BadSignature`] with a short reason that never holds the secret.
    fn verify_webhook(
        &self,
        secret: &Secret,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<(), WebhookError> {
        verify(secret.expose(), signature, body, now)
    }

    /// The header is there, reads as `t=...,v1=...` and `t` is within
    /// [`SIGNATURE_TOLERANCE_SECS`] of `now` (see [`check_header`]).
    ///
    /// # Errors
    ///
    /// [`WebhookError::BadSignature`] with the reason [`verify`] would give.
    fn check_signature_header(
        &self,
        signature: Option<&str>,
        now: i64,
    ) -> Result<(), WebhookError> {
        check_header(signature, now)
    }

    /// Reads a Stripe event. `customer.*`, `product.*`, `price.*` and `plan.*` (created, updated,
    /// deleted) give one change of that object, `*.deleted` a deletion; every mapped
    /// `customer.subscription.*` type, `customer.subscription.deleted` included, gives an upsert of
    /// the subscription (a subscription that ended is still there, canceled). Other types
    /// (`customer.discount.*`, `invoice.*`, ...) are ignored with no changes.
    ///
    /// Truncated items: a subscription change carries `children` (the complete set of its items,
    /// so items no longer listed are tombstoned) only when the event embeds the whole item list
    /// (`items.has_more` false). When Stripe truncated the list, `children` is `None` and the
    /// caller must call `fetch_object("subscription", id)` and apply that change, which always
    /// carries the complete item set. The same rule holds for events from `list_events`.
    ///
    /// # Errors
    ///
    /// [`WebhookError::Malformed`] when the body is not JSON, not an event, lacks `id`, `type`,
    /// `created` or `data.object`, or carries an object of another kind than its type announces.
    fn parse_webhook(&self, body: &[u8]) -> Result<Event, WebhookError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|err| WebhookError::Malformed(format!("the body is not JSON: {err}")))?;
        events::parse_event(value).map_err(|Malformed(reason)| WebhookError::Malformed(reason))
    }

    /// GETs `/v1/{customers,products,prices,plans,subscriptions}/{id}`. An object Stripe no
    /// longer has (404 `resource_missing`, or a deleted customer's `"deleted": true` stub) comes
    /// back as a deletion whose payload is the stub. A subscription always comes with its complete
    /// item set, listed from `/v1/subscription_items` when the embedded list is truncated.
    ///
    /// # Errors
    ///
    /// [`ConnectorError::Fatal`] for an unknown resource or an id that is not a Stripe id
    /// (letters, digits and `_`), otherwise classified as for listings.
    async fn fetch_object(
        &self,
        resource: &str,
        id: &str,
        account: Option<&str>,
    ) -> Result<Change, ConnectorError> {
        self.fetch_change(resource, id, account).await
    }

    /// Lists one page (up to 100, newest first) of `/v1/events` with the explicit types that
    /// change `resource`, within `window`; each event is read as [`Connector::parse_webhook`]
    /// reads a delivery, truncated-items rule included. Pass the same window for every page of a
    /// walk: the cursor is the id of the page's last event.
    ///
    /// # Errors
    ///
    /// [`ConnectorError::Fatal`] for an unknown resource, otherwise classified as for listings;
    /// an event that cannot be read is a malformed answer (retryable).
    async fn list_events(
        &self,
        resource: &str,
        cursor: Option<&str>,
        window: &EventWindow,
        account: Option<&str>,
    ) -> Result<EventPage, ConnectorError> {
        self.events_page(resource, cursor, window, account).await
    }

    /// GETs `/v1/account`: the id of the account the key belongs to (the platform, for a Connect
    /// app).
    ///
    /// # Errors
    ///
    /// Classified as for listings; an answer without an `acct_` id is malformed.
    fn live_mode(&self) -> Option<bool> {
        self.live
    }

    async fn own_account(&self) -> Result<String, ConnectorError> {
        let request = "GET /v1/account";
        let object = self.http.get_object("account", "", &[], None).await?;
        match object
            .as_ref()
            .and_then(|o| o.get("id"))
            .and_then(Value::as_str)
        {
            Some(id) if events::is_account_id(id) => Ok(id.to_owned()),
            _ => Err(self.malformed(request, Malformed("no account id".into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use supasaasy_connector::find_resource;

    use super::*;

    fn connector() -> StripeConnector {
        StripeConnector::new(AppSettings::new(
            "stripe_prod",
            Secret::new("sk_test_123"),
            "https://api.stripe.com/",
        ))
        .expect("connector")
    }

    #[test]
    fn resources_match_the_contract() {
        let keys: Vec<(&str, Vec<&str>)> = RESOURCES
            .iter()
            .map(|r| (r.name, r.collection_keys().collect()))
            .collect();
        assert_eq!(
            &keys[..5],
            &[
                ("customer", vec!["stripe_customer"]),
                ("product", vec!["stripe_product"]),
                ("price", vec!["stripe_price"]),
                ("plan", vec!["stripe_plan"]),
                (
                    "subscription",
                    vec!["stripe_subscription", "stripe_subscription_item"]
                ),
            ]
        );
        let names: Vec<&str> = RESOURCES.iter().map(|r| r.name).collect();
        for name in [
            "invoice",
            "invoice_item",
            "charge",
            "payment_intent",
            "refund",
            "dispute",
            "credit_note",
            "coupon",
            "promotion_code",
            "discount",
            "tax_rate",
            "tax_id",
            "payment_method",
            "setup_intent",
            "subscription_schedule",
            "checkout_session",
            "payout",
            "balance_transaction",
            "early_fraud_warning",
            "review",
            "account",
        ] {
            assert!(names.contains(&name), "{name}");
        }
        assert_eq!(names.len(), 26);
        let account = RESOURCES
            .iter()
            .find(|r| r.name == "account")
            .expect("account");
        assert!(account.connected_accounts && !account.sweep);
        assert_eq!(RESOURCES.iter().filter(|r| r.connected_accounts).count(), 1);
        let invoice = RESOURCES
            .iter()
            .find(|r| r.name == "invoice")
            .expect("invoice");
        assert_eq!(invoice.child_collection_keys, &["stripe_invoice_line_item"]);
    }

    #[test]
    fn connector_describes_itself() {
        let connector = connector();
        assert_eq!(connector.kind(), "stripe");
        assert_eq!(connector.api_version(), "2025-08-27.basil");
        assert_eq!(
            find_resource(&connector, "plan").map(|r| r.collection_key),
            Some("stripe_plan")
        );
        let debug = format!("{connector:?}");
        assert!(debug.contains("stripe_prod") && debug.contains("https://api.stripe.com\""));
        assert!(!debug.contains("sk_test_123"));
    }

    #[tokio::test]
    async fn unknown_resource_is_fatal() {
        let err = connector()
            .list_page("widget", None, &ListOptions::default())
            .await
            .expect_err("unknown resource");
        match err {
            ConnectorError::Fatal { message } => {
                assert!(message.contains("\"widget\"") && message.contains("stripe_prod"));
            }
            other => panic!("expected Fatal, got {other:?}"),
        }
    }

    #[test]
    fn a_key_says_its_mode() {
        assert_eq!(key_mode("sk_live_abc"), Some(true));
        assert_eq!(key_mode("rk_live_abc"), Some(true));
        assert_eq!(key_mode("sk_test_abc"), Some(false));
        assert_eq!(key_mode("rk_test_abc"), Some(false));
        assert_eq!(key_mode("fake_live_key"), None);
        assert_eq!(key_mode("sk_other"), None);
    }

    #[tokio::test]
    async fn fetch_object_refuses_unknown_resources_and_odd_ids() {
        let connector = connector();
        let err = connector
            .fetch_object("widget", "wd_1", None)
            .await
            .expect_err("unknown resource");
        assert!(matches!(err, ConnectorError::Fatal { .. }), "{err:?}");
        let err = connector
            .fetch_object("discount", "di_1", None)
            .await
            .expect_err("discounts cannot be fetched");
        assert!(matches!(err, ConnectorError::Fatal { .. }), "{err:?}");
        // Ids with `/`, `?`, spaces and the like are escaped (tests/api/stripe_ids.rs); these no
        // request path can hold.
        for id in ["", ".", "..", &"c".repeat(256)] {
            match connector.fetch_object("customer", id, None).await {
                Err(ConnectorError::Fatal { message }) => {
                    assert!(message.contains("not an id a request path"), "{message}");
                }
                other => panic!("{id:?}: expected Fatal, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn list_events_refuses_unknown_resources() {
        let window = EventWindow {
            created_gt: 0,
            created_lte: 1,
        };
        let err = connector()
            .list_events("widget", None, &window, None)
            .await
            .expect_err("unknown resource");
        match err {
            ConnectorError::Fatal { message } => assert!(message.contains("\"widget\"")),
            other => panic!("expected Fatal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_listed_object_without_an_id_fails_the_page_naming_app_resource_and_request() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = vec![0u8; 8192];
            let _ = socket.read(&mut request).await;
            let body = r#"{"object": "list", "has_more": false, "data": [{"id": "ch_1"}, {"object": "charge"}]}"#;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        });
        let connector = StripeConnector::new(AppSettings::new(
            "stripe_prod",
            Secret::new("sk_test_123"),
            format!("http://{addr}"),
        ))
        .expect("connector");
        let err = connector
            .list_page("charge", None, &ListOptions::default())
            .await
            .expect_err("an object without an id");
        let text = err.message();
        assert!(
            text.contains("stripe_prod")
                && text.contains("GET /v1/charges")
                && text.contains("(charge)"),
            "{text}"
        );
        server.await.expect("server");
    }

    #[test]
    fn webhooks_verify_then_parse_through_the_trait() {
        let connector: &dyn Connector = &connector();
        assert_eq!(connector.signature_header(), "stripe-signature");
        let secret = Secret::new("whsec_test_secret");
        let body = br#"{"id":"evt_1","object":"event","type":"customer.updated","created":1700000000,"data":{"object":{"id":"cus_1","object":"customer","created":1690000000}}}"#;
        let header = sign(secret.expose(), 1_700_000_000, body);
        connector
            .verify_webhook(&secret, Some(&header), body, 1_700_000_100)
            .expect("verifies");
        assert!(matches!(
            connector.verify_webhook(&secret, None, body, 1_700_000_100),
            Err(WebhookError::BadSignature(_))
        ));
        let event = connector.parse_webhook(body).expect("event");
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.created, 1_700_000_000);
        assert_eq!(event.changes[0].record.created, Some(1_690_000_000));
        assert_eq!(event.changes[0].record.external_id, "cus_1");

        for garbage in [&b"not json"[..], b"", b"{}", b"\xff\xfe"] {
            assert!(matches!(
                connector.parse_webhook(garbage),
                Err(WebhookError::Malformed(_))
            ));
        }
    }

    #[test]
    fn golden_payload_verifies_but_has_no_created() {
        let connector = connector();
        let body = br#"{"id":"evt_test_1","object":"event","type":"customer.created","data":{"object":{"id":"cus_123","object":"customer"}}}"#;
        let header =
            "t=1700000000,v1=969ed486311f01fe741ae24da3ba6be8b34d97722fca107d40ca42b25d7a1ed6";
        let secret = Secret::new("whsec_test_secret");
        connector
            .verify_webhook(&secret, Some(header), body, 1_700_000_000)
            .expect("golden vector");
        match connector.parse_webhook(body) {
            Err(WebhookError::Malformed(reason)) => assert!(reason.contains("created"), "{reason}"),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }
}
