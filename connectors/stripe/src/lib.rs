//! The Stripe connector: lists customers, products, prices, plans and subscriptions (each
//! subscription followed by its items) one page at a time through Stripe's REST API.
//!
//! It knows Stripe's HTTP protocol and nothing of Postgres or the queue. Invariants:
//!
//! - every request pins [`STRIPE_API_VERSION`], so payloads have one shape whatever the account's
//!   default version;
//! - a cursor is the id of the last object of a page (Stripe's `starting_after`), so any page can be
//!   fetched again from the cursor handed out with the page before it;
//! - a subscription's items follow it in the same page and are complete: when Stripe truncates the
//!   embedded `items` list, all items are listed from `/v1/subscription_items` instead;
//! - nothing is retried here: each failure is classified next to the HTTP call (see `client`) and the
//!   daemon decides whether and when to ask again.

mod client;
mod listing;

use std::fmt;

use async_trait::async_trait;
use serde_json::Value;
use supasaasy_connector::{
    AppSettings, Connector, ConnectorError, ListOptions, Page, Record, Resource,
};

use crate::client::StripeHttp;
use crate::listing::{EmbeddedItems, Endpoint, Malformed};

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
    },
    Resource {
        name: "product",
        collection_key: "stripe_product",
        child_collection_keys: &[],
    },
    Resource {
        name: "price",
        collection_key: "stripe_price",
        child_collection_keys: &[],
    },
    Resource {
        name: "plan",
        collection_key: "stripe_plan",
        child_collection_keys: &[],
    },
    Resource {
        name: "subscription",
        collection_key: "stripe_subscription",
        child_collection_keys: &[SUBSCRIPTION_ITEM_COLLECTION],
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
            items.extend(list.data);
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

    fn malformed(&self, request: &str, err: Malformed) -> ConnectorError {
        ConnectorError::Retryable {
            message: format!(
                "Stripe sent a malformed list for app {} on {request}: {}",
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
        let endpoint = Endpoint::find(resource).ok_or_else(|| ConnectorError::Fatal {
            message: format!(
                "Stripe connector of app {} has no resource {resource:?} (known: {})",
                self.http.app_key(),
                RESOURCES
                    .iter()
                    .map(|r| r.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        let request = format!("GET /v1/{}", endpoint.path);
        let query = listing::list_query(&endpoint, cursor, options);
        let list = self.http.get_list(endpoint.path, &query).await?;
        let mut requests = 1;
        let next_cursor = list
            .next_cursor()
            .map_err(|err| self.malformed(&request, err))?;

        let mut records: Vec<Record> = Vec::with_capacity(list.data.len());
        for object in list.data {
            let items = endpoint
                .subscriptions
                .then(|| listing::embedded_items(&object));
            let record = listing::object_record(&endpoint, object)
                .map_err(|err| self.malformed(&request, err))?;
            let items = match items {
                None => Vec::new(),
                Some(EmbeddedItems::Complete(items)) => items,
                Some(EmbeddedItems::Truncated) => {
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use supasaasy_connector::{find_resource, Secret};

    use super::*;

    fn connector() -> StripeConnector {
        StripeConnector::new(AppSettings {
            app_key: "stripe_prod".into(),
            api_key: Secret::new("sk_test_123"),
            base_url: "https://api.stripe.com/".into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        })
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
}
