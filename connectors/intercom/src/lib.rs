//! The Intercom connector: lists companies, contacts, admins and conversations (each conversation
//! followed by its parts) one page at a time through Intercom's REST API, finds the contacts and
//! conversations updated within a window with Intercom's search, verifies and reads webhook
//! deliveries, and fetches single objects.
//!
//! It knows Intercom's HTTP protocol and nothing of Postgres or the queue. Invariants:
//!
//! - every request pins [`INTERCOM_API_VERSION`] and waits out a spent rate-limit window first
//!   (see `ratelimit`), shared by all requests of the app;
//! - a contact or conversation cursor is Intercom's own `starting_after`, so any page can be asked
//!   for again; a company cursor belongs to a scroll, which only the connector that handed it out
//!   continues, and which starts again from the beginning otherwise (see `scroll`);
//! - a conversation's parts follow it in the same page or come with it as a complete child set;
//! - a webhook is verified (see `signature`) before a byte of it is parsed, and a delivery becomes
//!   the same records a listing would give (see `webhook`, `objects`);
//! - nothing is retried here: each failure is classified next to the HTTP call (see `client`) and
//!   the daemon decides whether and when to ask again.

mod client;
mod listing;
mod objects;
mod ratelimit;
mod scroll;
mod search;
mod signature;
mod webhook;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use supasaasy_connector::{
    AppSettings, Change, Connector, ConnectorError, Event, EventPage, EventWindow, Incremental,
    ListOptions, Page, Provider, Resource, Secret, WebhookError,
};

use crate::client::IntercomHttp;
use crate::objects::Kind;
use crate::scroll::ScrollMemory;

pub use crate::signature::{check_header, sign, verify};

/// The Intercom API version every request pins and every fetched row records.
pub const INTERCOM_API_VERSION: &str = "2.14";

/// The collection of conversation parts, written with their conversation.
const PART_COLLECTION: &str = "intercom_conversation_part";

/// The field of a part's payload that names its conversation (added by the connector).
const PART_PARENT_FIELD: &str = "conversation_id";

/// The resources this connector syncs, in the order a full sync runs them. Companies are
/// exclusive (Intercom allows one open scroll per workspace); companies and admins have no
/// search, so their incremental runs walk the whole listing.
pub static RESOURCES: &[Resource] = &[
    Resource {
        name: "company",
        collection_key: "intercom_company",
        child_collection_keys: &[],
        exclusive: true,
        incremental: Incremental::FullPass,
        splittable: false,
        listed: true,
        sweep: true,
        per_parent: None,
        fetchable: true,
        connected_accounts: false,
        children_swept_with_parent: None,
    },
    Resource {
        name: "contact",
        collection_key: "intercom_contact",
        child_collection_keys: &[],
        exclusive: false,
        incremental: Incremental::Events,
        splittable: false,
        listed: true,
        sweep: true,
        per_parent: None,
        fetchable: true,
        connected_accounts: false,
        children_swept_with_parent: None,
    },
    Resource {
        name: "admin",
        collection_key: "intercom_admin",
        child_collection_keys: &[],
        exclusive: false,
        incremental: Incremental::FullPass,
        splittable: false,
        listed: true,
        sweep: true,
        per_parent: None,
        fetchable: true,
        connected_accounts: false,
        children_swept_with_parent: None,
    },
    Resource {
        name: "conversation",
        collection_key: "intercom_conversation",
        child_collection_keys: &[PART_COLLECTION],
        exclusive: false,
        incremental: Incremental::Events,
        splittable: false,
        listed: true,
        sweep: true,
        per_parent: None,
        fetchable: true,
        connected_accounts: false,
        children_swept_with_parent: Some(PART_PARENT_FIELD),
    },
];

/// Intercom, as the daemon's list of providers knows it. Its incremental runs search on
/// `updated_at`, so no cursor is too old; its budget is read from its rate-limit headers.
pub static PROVIDER: Provider = Provider {
    name: "intercom",
    resources: RESOURCES,
    signature_headers: &["x-hub-signature"],
    service: "intercom",
    event_retention_days: None,
    default_base_url: "https://api.intercom.io",
    default_requests_per_second: |_| None,
    build: |settings| Ok(Arc::new(IntercomConnector::new(settings)?)),
};

/// The connector of one Intercom app (one workspace and access token).
pub struct IntercomConnector {
    /// The authenticated HTTP client of the app, with its rate-limit budget.
    http: IntercomHttp,
    /// The company scroll this connector may continue.
    scroll: ScrollMemory,
}

impl IntercomConnector {
    /// Builds the connector of one app: an HTTP client with the app's timeouts, its access token
    /// as a bearer token and the pinned `Intercom-Version`. The base URL picks the region
    /// (`https://api.intercom.io`, `https://api.eu.intercom.io`, `https://api.au.intercom.io`); a
    /// trailing slash is ignored.
    ///
    /// # Errors
    ///
    /// [`ConnectorError::Fatal`] when the base URL is not an http(s) URL, the token cannot be sent
    /// in a header, or the HTTP client cannot be built.
    pub fn new(settings: AppSettings) -> Result<Self, ConnectorError> {
        Ok(IntercomConnector {
            http: IntercomHttp::new(settings)?,
            scroll: ScrollMemory::default(),
        })
    }

    fn kind_of(&self, resource: &str) -> Result<Kind, ConnectorError> {
        Kind::find(resource).ok_or_else(|| ConnectorError::Fatal {
            message: format!(
                "Intercom connector of app {} has no resource {resource:?} (known: {})",
                self.http.app_key(),
                RESOURCES
                    .iter()
                    .map(|r| r.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
}

impl fmt::Debug for IntercomConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntercomConnector")
            .field("app_key", &self.http.app_key())
            .field("base_url", &self.http.base_url())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Connector for IntercomConnector {
    fn kind(&self) -> &'static str {
        "intercom"
    }

    fn resources(&self) -> &'static [Resource] {
        RESOURCES
    }

    fn api_version(&self) -> &str {
        INTERCOM_API_VERSION
    }

    /// Lists one page: companies from the scroll (up to 100 a page), contacts and conversations
    /// 150 a page from Intercom's cursor, admins all at once. A conversation page fetches every
    /// conversation of the page whole (8 at once) and holds each one's record followed by its
    /// parts, so it takes up to 151 requests. Objects created before `created_gte` are left out.
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
        match self.kind_of(resource)? {
            Kind::Company => {
                scroll::companies_page(&self.http, &self.scroll, cursor, options).await
            }
            Kind::Contact => listing::contacts_page(&self.http, cursor, options).await,
            Kind::Admin => listing::admins_page(&self.http, options).await,
            Kind::Conversation => listing::conversations_page(&self.http, cursor, options).await,
        }
    }

    fn signature_header(&self) -> &'static str {
        "x-hub-signature"
    }

    /// Checks `X-Hub-Signature: sha1=<hex>` (see [`verify`]), the HMAC-SHA1 of the raw body keyed
    /// by the app's client secret. Intercom signs no timestamp, so `now` is not used.
    ///
    /// # Errors
    ///
    /// [`WebhookError::BadSignature`] with a short reason that never holds the secret.
    fn verify_webhook(
        &self,
        secret: &Secret,
        signature: Option<&str>,
        body: &[u8],
        _now: i64,
    ) -> Result<(), WebhookError> {
        verify(secret.expose(), signature, body)
    }

    /// The header is there and reads as `sha1=` and 40 hex digits (see [`check_header`]).
    ///
    /// # Errors
    ///
    /// [`WebhookError::BadSignature`] with the reason [`verify`] would give.
    fn check_signature_header(
        &self,
        signature: Option<&str>,
        _now: i64,
    ) -> Result<(), WebhookError> {
        check_header(signature)
    }

    /// Reads a `notification_event`; see the `webhook` module for the topics mapped. A
    /// conversation upsert carries no children: the daemon fetches the conversation whole.
    ///
    /// # Errors
    ///
    /// [`WebhookError::Malformed`] when the body is not a notification with `id`, `topic` and
    /// `data.item`, or a mapped item lacks its id.
    fn parse_webhook(&self, body: &[u8]) -> Result<Event, WebhookError> {
        webhook::parse_notification(body)
    }

    /// GETs `/{companies,contacts,admins,conversations}/{id}`; a conversation comes with the
    /// complete set of its parts (at most the 500 most recent). An object Intercom no longer has
    /// (404 with an Intercom error list) comes back as a deletion with payload
    /// `{"id": id, "deleted": true}`.
    ///
    /// # Errors
    ///
    /// [`ConnectorError::Fatal`] for an unknown resource or an id outside `[A-Za-z0-9_.-]{1,255}`,
    /// otherwise classified as for listings.
    /// Intercom has no accounts: `account` is not read.
    async fn fetch_object(
        &self,
        resource: &str,
        id: &str,
        _account: Option<&str>,
    ) -> Result<Change, ConnectorError> {
        let kind = self.kind_of(resource)?;
        listing::fetch(&self.http, kind, id).await
    }

    /// Searches one page (150) of the contacts or conversations updated within `window`, each
    /// result an event `{resource}:{id}:{updated_at}` of type `{resource}.search`. The contact
    /// window is widened by a day and an hour on each side (Intercom matches contact dates by
    /// whole days in the workspace's time zone); the conversation window starts ten minutes early
    /// (Intercom's search index trails its writes). States found twice have the same event id.
    /// Pass the same window for every page of a walk.
    ///
    /// # Errors
    ///
    /// [`ConnectorError::Fatal`] for an unknown resource or one without incremental sync (company,
    /// admin), otherwise classified as for listings.
    async fn list_events(
        &self,
        resource: &str,
        cursor: Option<&str>,
        window: &EventWindow,
        _account: Option<&str>,
    ) -> Result<EventPage, ConnectorError> {
        let kind = self.kind_of(resource)?;
        match kind {
            Kind::Contact | Kind::Conversation => {
                search::events_page(&self.http, kind, cursor, window).await
            }
            Kind::Company | Kind::Admin => Err(ConnectorError::Fatal {
                message: format!(
                    "Intercom connector of app {} has no incremental sync for {resource}; run it in full",
                    self.http.app_key()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use supasaasy_connector::find_resource;

    use super::*;

    fn connector() -> IntercomConnector {
        IntercomConnector::new(AppSettings::new(
            "intercom_main",
            Secret::new("tok_secret_123"),
            "https://api.intercom.io/",
        ))
        .expect("connector")
    }

    fn fatal_message(err: ConnectorError) -> String {
        match err {
            ConnectorError::Fatal { message } => message,
            other => panic!("expected Fatal, got {other:?}"),
        }
    }

    #[test]
    fn resources_match_the_contract() {
        let keys: Vec<(&str, Vec<&str>, bool, bool)> = RESOURCES
            .iter()
            .map(|r| {
                (
                    r.name,
                    r.collection_keys().collect(),
                    r.exclusive,
                    r.incremental == Incremental::Events,
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                ("company", vec!["intercom_company"], true, false),
                ("contact", vec!["intercom_contact"], false, true),
                ("admin", vec!["intercom_admin"], false, false),
                (
                    "conversation",
                    vec!["intercom_conversation", "intercom_conversation_part"],
                    false,
                    true
                ),
            ]
        );
        for resource in RESOURCES {
            let kind = Kind::find(resource.name).expect("kind");
            assert_eq!(kind.collection_key(), resource.collection_key);
        }
    }

    #[test]
    fn connector_describes_itself() {
        let connector = connector();
        assert_eq!(connector.kind(), "intercom");
        assert_eq!(connector.api_version(), "2.14");
        assert_eq!(connector.signature_header(), "x-hub-signature");
        assert_eq!(
            find_resource(&connector, "conversation").map(|r| r.child_collection_keys),
            Some(&["intercom_conversation_part"][..])
        );
        let debug = format!("{connector:?}");
        assert!(debug.contains("intercom_main") && debug.contains("https://api.intercom.io\""));
        assert!(!debug.contains("tok_secret_123"));
    }

    #[tokio::test]
    async fn unknown_resources_are_fatal() {
        let connector = connector();
        let err = connector
            .list_page("ticket", None, &ListOptions::default())
            .await
            .expect_err("unknown");
        let message = fatal_message(err);
        assert!(message.contains("\"ticket\"") && message.contains("intercom_main"));
        let err = connector
            .fetch_object("ticket", "1", None)
            .await
            .expect_err("unknown");
        fatal_message(err);
    }

    #[tokio::test]
    async fn only_contacts_and_conversations_have_events() {
        let connector = connector();
        let window = EventWindow {
            created_gt: 0,
            created_lte: 1,
        };
        for resource in ["company", "admin"] {
            let err = connector
                .list_events(resource, None, &window, None)
                .await
                .expect_err("no search");
            assert!(
                fatal_message(err).contains("no incremental sync"),
                "{resource}"
            );
        }
        let err = connector
            .list_events("ticket", None, &window, None)
            .await
            .expect_err("unknown");
        fatal_message(err);
    }

    #[tokio::test]
    async fn fetch_object_refuses_odd_ids_before_any_request() {
        let connector = connector();
        for id in [
            "",
            "1/../x",
            "a b",
            "1?x=y",
            "%2F",
            "é",
            "..",
            &"a".repeat(256),
        ] {
            let err = connector
                .fetch_object("contact", id, None)
                .await
                .expect_err("odd id");
            let message = fatal_message(err);
            assert!(
                message.contains("not an Intercom object id"),
                "{id:?}: {message}"
            );
        }
    }

    #[test]
    fn webhooks_verify_then_parse_through_the_trait() {
        let connector: &dyn Connector = &connector();
        let secret = Secret::new("client_secret");
        let body = br#"{"type":"notification_event","id":"notif_1","topic":"contact.user.created","app_id":"a1","data":{"type":"notification_event_data","item":{"type":"contact","id":"c1","created_at":1700000000,"updated_at":1700000100}},"created_at":1700000200}"#;
        let header = sign(secret.expose(), body);
        connector
            .verify_webhook(&secret, Some(&header), body, 0)
            .expect("verifies whatever the clock");
        connector
            .verify_webhook(&secret, Some(&header), body, i64::MAX)
            .expect("no timestamp to go stale");
        assert!(matches!(
            connector.verify_webhook(&secret, None, body, 0),
            Err(WebhookError::BadSignature(_))
        ));
        let event = connector.parse_webhook(body).expect("event");
        assert_eq!(event.id, "notif_1");
        assert_eq!(event.created, 1_700_000_100);
        assert_eq!(event.changes[0].record.external_id, "c1");
        assert_eq!(event.changes[0].record.created, Some(1_700_000_000));
    }
}
