//! Applying provider events to the mirror: webhook deliveries and events-API entries take this one
//! path, whatever order they arrive in.
//!
//! An event's state is as of its `created` second. Per object, under the object's lock:
//! - no row, or a row older than that second: the event's state is written;
//! - a row at least a second newer: the event is stale and changes nothing;
//! - a row from the same second whose state differs: the order of the two cannot be known, so the
//!   object is fetched from the provider, which is the truth, and that state is written as of now.
//!
//! A parent whose event does not carry all its children (a truncated item list) is fetched too.
//! Children that left their parent are tombstoned. The event id is recorded in the same
//! transaction, so a second delivery changes nothing, and a failure leaves nothing half-applied.

use chrono::{DateTime, Duration, Utc};
use supasaasy_connector::{find_resource, Change, Connector, ConnectorError, Event, Record};
use tokio_postgres::GenericClient;

use crate::context::Context;
use crate::store::entities::{self, RowState};
use crate::store::{events, StoreError};

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// At least one change was written.
    Applied,
    /// Every change was older than what the mirror holds.
    Stale,
    /// The event type is not mapped.
    Ignored,
    /// The event id was seen before.
    Duplicate,
}

impl Action {
    /// The name answered to the provider and recorded.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Applied => "applied",
            Action::Stale => "stale",
            Action::Ignored => "ignored",
            Action::Duplicate => "duplicate",
        }
    }
}

/// Why an event could not be applied; the provider should deliver it again later.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Fetching the object's true state failed.
    #[error("fetching the object from the provider: {0}")]
    Provider(#[from] ConnectorError),
}

impl From<tokio_postgres::Error> for ApplyError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApplyError::Store(e.into())
    }
}

/// Applies one event of `app_key` in one transaction. `source` is `webhook` or `events_api`.
///
/// # Errors
///
/// An [`ApplyError`]; nothing of the event was written then.
pub async fn apply_event(
    ctx: &Context,
    app_key: &str,
    connector: &dyn Connector,
    event: &Event,
    source: &str,
) -> Result<Action, ApplyError> {
    let mut client = ctx.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await?;
    let fresh = events::record_event(
        &*tx,
        app_key,
        &event.id,
        &event.event_type,
        event.created,
        source,
    )
    .await?;
    if !fresh {
        return Ok(Action::Duplicate);
    }
    let action = if event.ignored {
        Action::Ignored
    } else {
        let version = DateTime::from_timestamp(event.created, 0).unwrap_or_else(Utc::now);
        let mut applied = false;
        for change in &event.changes {
            applied |= apply_change(&*tx, app_key, connector, change, version).await?;
        }
        if applied {
            Action::Applied
        } else {
            Action::Stale
        }
    };
    events::set_action(&*tx, app_key, &event.id, action.as_str()).await?;
    tx.commit().await?;
    Ok(action)
}

/// Applies one change under its object's lock; true when something was written.
async fn apply_change(
    tx: &impl GenericClient,
    app_key: &str,
    connector: &dyn Connector,
    change: &Change,
    version: DateTime<Utc>,
) -> Result<bool, ApplyError> {
    let record = &change.record;
    let current =
        entities::lock_and_read(tx, app_key, record.collection_key, &record.external_id).await?;
    let has_children = find_resource(connector, change.resource)
        .is_some_and(|r| !r.child_collection_keys.is_empty());
    let must_fetch = match &current {
        Some(row) if row.source_updated_at >= version + Duration::seconds(1) => return Ok(false),
        Some(row) if row.source_updated_at >= version => {
            if same_state(row, change) {
                return Ok(false);
            }
            true
        }
        _ => has_children && !change.deleted && change.children.is_none(),
    };
    if must_fetch {
        let fetched_at = Utc::now();
        let truth = fetch_with_retry(connector, change.resource, &record.external_id).await?;
        write(tx, app_key, connector, &truth, fetched_at).await?;
    } else {
        write(tx, app_key, connector, change, version).await?;
    }
    Ok(true)
}

fn same_state(row: &RowState, change: &Change) -> bool {
    row.deleted == change.deleted && row.payload == change.record.payload
}

async fn write(
    tx: &impl GenericClient,
    app_key: &str,
    connector: &dyn Connector,
    change: &Change,
    version: DateTime<Utc>,
) -> Result<(), ApplyError> {
    let mut records: Vec<&Record> = vec![&change.record];
    let mut deleted = vec![change.deleted];
    if let Some(children) = &change.children {
        for child in &children.records {
            records.push(child);
            deleted.push(false);
        }
    }
    entities::write_changes(
        tx,
        app_key,
        connector.api_version(),
        version,
        &records,
        &deleted,
    )
    .await?;
    if let Some(children) = &change.children {
        let keep: Vec<&str> = children
            .records
            .iter()
            .map(|r| r.external_id.as_str())
            .collect();
        entities::tombstone_departed_children(
            tx,
            app_key,
            children.collection_key,
            children.parent_field,
            &change.record.external_id,
            &keep,
            version,
        )
        .await?;
    }
    Ok(())
}

/// Fetches an object, retrying briefly; a webhook answers an error (and the provider delivers again)
/// when the provider stays unavailable.
async fn fetch_with_retry(
    connector: &dyn Connector,
    resource: &str,
    id: &str,
) -> Result<Change, ConnectorError> {
    let mut attempt = 0;
    loop {
        match connector.fetch_object(resource, id).await {
            Err(e) if e.is_retryable() && attempt < 2 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            other => return other,
        }
    }
}
