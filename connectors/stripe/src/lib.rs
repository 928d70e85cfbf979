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
mod webhook;

use std::fmt;

use async_trait::async_trait;
use serde_json::json;
use serde_json::Value;
use supasaasy_connector::{
    AppSettings, Change, Connector, ConnectorError, Event, EventPage, EventWindow, ListOptions,
    Page, Record, Resource, Secret, WebhookError,
};

use crate::client::StripeHttp;
use crate::listing::{EmbeddedItems, Endpoint, Malformed};

pub use crate::webhook::{sign, verify, SIGNATURE_TOLERANCE_SECS};

/// The Stripe API version every request pins and every fetched row records.
pub const STRIPE_API_VERSION: &str = "2025-08-27.basil";

/// The collection of subscription items, written with their subscription.
const SUBSCRIPTION_ITEM_COLLECTION: &str = "stripe_subscription_item";

/// The resources this connector syncs, in the order a full sync runs them: subscriptions last, so
/// the customers and prices they point at are already mirrored.
pub static RESOURCES: &[Resource] = &[
    Resource {
        name: "customer",
        collection_key: "stripe_customer",
        child_collection_keys: &[],
        exclusive: false,
        incremental: true,
        splittable: true,
    },
    Resource {
        name: "product",
        collection_key: "stripe_product",
        child_collection_keys: &[],
        exclusive: false,
        incremental: true,
        splittable: true,
    },
    Resource {
        name: "price",
        collection_key: "stripe_price",
        child_collection_keys: &[],
        exclusive: false,
        incremental: true,
        splittable: true,
    },
    Resource {
        name: "plan",
        collection_key: "stripe_plan",
        child_collection_keys: &[],
        exclusive: false,
        incremental: true,
        splittable: true,
    },
    Resource {
        name: "subscription",
        collection_key: "stripe_subscription",
        child_collection_keys: &[SUBSCRIPTION_ITEM_COLLECTION],
        exclusive: false,
        incremental: true,
        splittable: true,
    },
];

/// The connector of one Stripe app (one Stripe account and key).
pub struct StripeConnector {
    /// The authenticated HTTP client of the app.
    http: StripeHttp,
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
        Ok(StripeConnector {
            http: StripeHttp::new(settings)?,
        })
    }

    /// Lists every item of a subscription from `/v1/subscription_items`, with the number of
    /// requests it took.
    async fn subscription_items(
        &self,
        subscription_id: &str,
    ) -> Result<(Vec<Value>, u32), ConnectorError> {
        let mut items = Vec::new();
        let mut requests = 0;
        let mut cursor: Option<String> = None;
        loop {
            let query = listing::items_query(subscription_id, cursor.as_deref());
            let list = self.http.get_list("subscription_items", &query).await?;
            requests += 1;
            let next = list
                .next_cursor()
                .map_err(|err| self.malformed("GET /v1/subscription_items", err))?;
            for item in &list.data {
                items.push(
                    listing::parsed(item)
                        .map_err(|err| self.malformed("GET /v1/subscription_items", err))?,
                );
            }
            match next {
                None => return Ok((items, requests)),
                // A cursor that does not move would page forever.
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return Err(self.malformed(
                        "GET /v1/subscription_items",
                        Malformed(format!("the item list of {subscription_id} repeats {next}")),
                    ))
                }
                Some(next) => cursor = Some(next),
            }
        }
    }

    /// Fetches one object and turns it into a change; see [`Connector::fetch_object`].
    async fn fetch_change(&self, resource: &str, id: &str) -> Result<Change, ConnectorError> {
        let endpoint = self.endpoint(resource)?;
        if !is_object_id(id) {
            return Err(ConnectorError::Fatal {
                message: format!(
                    "cannot fetch {resource} {:?} for app {}: not a Stripe object id",
                    id.chars().take(80).collect::<String>(),
                    self.http.app_key()
                ),
            });
        }
        let request = format!("GET /v1/{}/{id}", endpoint.path);
        let Some(object) = self.http.get_object(endpoint.path, id).await? else {
            let stub = json!({"id": id, "object": endpoint.resource.name, "deleted": true});
            return events::object_change(resource, stub, true)
                .map_err(|err| self.malformed(&request, err));
        };
        if object.get("id").and_then(Value::as_str) != Some(id) {
            return Err(self.malformed(&request, Malformed("the answer is another object".into())));
        }
        // A deleted customer is still retrievable, as a stub that says so.
        let deleted = object.get("deleted") == Some(&Value::Bool(true));
        let truncated = endpoint.subscriptions
            && !deleted
            && listing::embedded_items(&object) == EmbeddedItems::Truncated;
        let mut change = events::object_change(resource, object, deleted)
            .map_err(|err| self.malformed(&request, err))?;
        if truncated {
            let (items, _) = self.subscription_items(id).await?;
            let children = events::item_set(items).map_err(|err| self.malformed(&request, err))?;
            change.children = Some(children);
        }
        Ok(change)
    }

    /// Lists one page of the events of `resource`; see [`Connector::list_events`].
    async fn events_page(
        &self,
        resource: &str,
        cursor: Option<&str>,
        window: &EventWindow,
    ) -> Result<EventPage, ConnectorError> {
        let types = events::event_types(resource).ok_or_else(|| self.unknown(resource))?;
        let request = "GET /v1/events";
        let query = events::events_query(types, cursor, window);
        let list = self.http.get_list("events", &query).await?;
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

    /// The endpoint of a resource this connector syncs.
    fn endpoint(&self, resource: &str) -> Result<Endpoint, ConnectorError> {
        Endpoint::find(resource).ok_or_else(|| self.unknown(resource))
    }

    fn unknown(&self, resource: &str) -> ConnectorError {
        ConnectorError::Fatal {
            message: format!(
                "Stripe connector of app {} has no resource {resource:?} (known: {})",
                self.http.app_key(),
                RESOURCES
                    .iter()
                    .map(|r| r.name)
                    .collect::<Vec<_>>()
                    .join(", ")
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
        RESOURCES
    }

    fn api_version(&self) -> &str {
        STRIPE_API_VERSION
    }

    /// Lists one page of up to 100 objects, newest first. A subscription page also lists the items
    /// of any subscription whose embedded item list is truncated, so it may take several requests.
    ///
    /// # Errors
    ///
    /// [`ConnectorError::Fatal`] for a resource this connector does not sync, otherwise the
    /// classification of the first request that failed.
    async fn list_page(
        &self,
        resource: &str,
        cursor: Option<&str>,
        options: &ListOptions,
    ) -> Result<Page, ConnectorError> {
        let endpoint = self.endpoint(resource)?;
        let request = format!("GET /v1/{}", endpoint.path);
        let query = listing::list_query(&endpoint, cursor, options);
        let list = self.http.get_list(endpoint.path, &query).await?;
        let mut requests = 1;
        let next_cursor = list
            .next_cursor()
            .map_err(|err| self.malformed(&request, err))?;

        let mut records: Vec<Record> = Vec::with_capacity(list.data.len());
        for object in list.data {
            if !endpoint.subscriptions {
                records.push(
                    listing::raw_record(&endpoint, object)
                        .map_err(|err| self.malformed(&request, err))?,
                );
                continue;
            }
            let object = listing::parsed(&object).map_err(|err| self.malformed(&request, err))?;
            let items = listing::embedded_items(&object);
            let record = listing::object_record(&endpoint, object)
                .map_err(|err| self.malformed(&request, err))?;
            let items = match items {
                EmbeddedItems::Complete(items) => items,
                EmbeddedItems::Truncated => {
                    let (items, item_requests) =
                        self.subscription_items(&record.external_id).await?;
                    requests += item_requests;
                    items
                }
            };
            records.push(record);
            for item in items {
                records
                    .push(listing::item_record(item).map_err(|err| self.malformed(&request, err))?);
            }
        }

        Ok(Page {
            records,
            next_cursor,
            requests,
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
    async fn fetch_object(&self, resource: &str, id: &str) -> Result<Change, ConnectorError> {
        self.fetch_change(resource, id).await
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
    ) -> Result<EventPage, ConnectorError> {
        self.events_page(resource, cursor, window).await
    }
}

/// A Stripe object id (`cus_NffrFeUfNV2Hib`): letters, digits and `_`, so it is also a path
/// segment that needs no escaping.
fn is_object_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
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
            keys,
            vec![
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
            .list_page("invoice", None, &ListOptions::default())
            .await
            .expect_err("unknown resource");
        match err {
            ConnectorError::Fatal { message } => {
                assert!(message.contains("\"invoice\"") && message.contains("stripe_prod"));
            }
            other => panic!("expected Fatal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn fetch_object_refuses_unknown_resources_and_odd_ids() {
        let connector = connector();
        let err = connector
            .fetch_object("invoice", "in_1")
            .await
            .expect_err("unknown resource");
        assert!(matches!(err, ConnectorError::Fatal { .. }), "{err:?}");
        for id in [
            "",
            "cus_1/../x",
            "cus 1",
            "cus_1?expand=x",
            "cus_%2F",
            "cus_é",
        ] {
            match connector.fetch_object("customer", id).await {
                Err(ConnectorError::Fatal { message }) => {
                    assert!(message.contains("not a Stripe object id"), "{message}");
                }
                other => panic!("{id:?}: expected Fatal, got {other:?}"),
            }
        }
        assert!(is_object_id("cus_NffrFeUfNV2Hib"));
        assert!(!is_object_id(&"a".repeat(256)));
    }

    #[tokio::test]
    async fn list_events_refuses_unknown_resources() {
        let window = EventWindow {
            created_gt: 0,
            created_lte: 1,
        };
        let err = connector()
            .list_events("invoice", None, &window)
            .await
            .expect_err("unknown resource");
        match err {
            ConnectorError::Fatal { message } => assert!(message.contains("\"invoice\"")),
            other => panic!("expected Fatal, got {other:?}"),
        }
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
