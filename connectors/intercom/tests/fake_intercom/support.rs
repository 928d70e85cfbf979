//! Shared helpers: a connector pointed at a fake, and page-by-page walks as the daemon does them.

use std::time::Duration;

use supasaasy_connector::{
    AppSettings, Connector, ConnectorError, Event, EventWindow, ListOptions, Record, Secret,
};
use supasaasy_intercom::IntercomConnector;
use supasaasy_testkit::fake_intercom::FakeIntercom;

pub const APP: &str = "intercom_fake";

pub fn connector_with_token(intercom: &FakeIntercom, token: &str) -> IntercomConnector {
    IntercomConnector::new(AppSettings {
        request_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(2),
        ..AppSettings::new(APP, Secret::new(token), format!("{}/", intercom.base_url()))
    })
    .expect("connector")
}

pub fn connector(intercom: &FakeIntercom) -> IntercomConnector {
    connector_with_token(intercom, intercom.token())
}

/// Every record of a resource, walked page by page from a cursor.
#[derive(Debug, Default)]
pub struct Walk {
    pub records: Vec<Record>,
    pub pages: usize,
    pub requests: u32,
    /// Errors met (and retried) on the way.
    pub errors: Vec<ConnectorError>,
}

impl Walk {
    pub fn ids(&self, collection_key: &str) -> Vec<String> {
        self.records
            .iter()
            .filter(|r| r.collection_key == collection_key)
            .map(|r| r.external_id.clone())
            .collect()
    }

    pub fn sorted_ids(&self, collection_key: &str) -> Vec<String> {
        let mut ids = self.ids(collection_key);
        ids.sort();
        ids
    }
}

pub fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// Walks `resource` from the start; any error fails the test.
pub async fn walk(connector: &IntercomConnector, resource: &str) -> Walk {
    walk_with(connector, resource, &ListOptions::default()).await
}

pub async fn walk_with(
    connector: &IntercomConnector,
    resource: &str,
    options: &ListOptions,
) -> Walk {
    let mut walk = Walk::default();
    let mut cursor: Option<String> = None;
    loop {
        let page = connector
            .list_page(resource, cursor.as_deref(), options)
            .await
            .unwrap_or_else(|err| panic!("{resource} page {}: {err}", walk.pages + 1));
        walk.pages += 1;
        walk.requests += page.requests;
        walk.records.extend(page.records);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return walk,
        }
        assert!(walk.pages < 1000, "{resource} does not end");
    }
}

/// Walks `resource` from `cursor`, asking again with the same cursor after a retryable error (a
/// short sleep stands for the daemon's backoff), as the daemon's in-place retries do.
pub async fn walk_patiently(
    connector: &IntercomConnector,
    resource: &str,
    mut cursor: Option<String>,
) -> Walk {
    let mut walk = Walk::default();
    loop {
        match connector
            .list_page(resource, cursor.as_deref(), &ListOptions::default())
            .await
        {
            Ok(page) => {
                walk.pages += 1;
                walk.requests += page.requests;
                walk.records.extend(page.records);
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => return walk,
                }
            }
            Err(err) => {
                assert!(err.is_retryable(), "{resource}: {err}");
                walk.errors.push(err);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        assert!(
            walk.pages < 1000 && walk.errors.len() < 200,
            "{resource} does not end"
        );
    }
}

/// Every event of a window, page by page.
pub async fn events(
    connector: &IntercomConnector,
    resource: &str,
    window: EventWindow,
) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = connector
            .list_events(resource, cursor.as_deref(), &window, None)
            .await
            .unwrap_or_else(|err| panic!("{resource} events page {}: {err}", pages + 1));
        pages += 1;
        events.extend(page.events);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return (events, pages),
        }
        assert!(pages < 1000, "{resource} events do not end");
    }
}

pub fn message(err: &ConnectorError) -> &str {
    err.message()
}
