//! Writes of events' changes into the mirror (`supasaasy.entities`), a batch of events at a time:
//! the objects' locks, their current state, the changed rows and the children that left their
//! parent, each as one statement whatever the batch's size.
//!
//! Every lock an event takes is an advisory lock on its object's key, taken for the rest of the
//! transaction and always in the order of the keys' hashes, so two batches that share objects wait
//! for each other instead of deadlocking. Rows go through the same conflict rule as sync pages
//! ([`super::entities`]): older state never replaces newer.
//!
//! Statements are prepared once per connection (the pool's statement cache): a batch is a handful
//! of round trips, not two per statement.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use supasaasy_connector::Record;

use super::entities::{RowState, ON_CONFLICT};
use super::StoreError;

/// An object of the mirror: app, collection, provider id.
pub type ObjectKey<'a> = (&'a str, &'a str, &'a str);

/// The advisory lock key of an object; the same text as every daemon version has locked.
fn lock_text((app_key, collection_key, external_id): &ObjectKey<'_>) -> String {
    format!("{app_key}\u{1f}{collection_key}\u{1f}{external_id}")
}

/// Takes the locks of `keys` for the rest of the transaction, in one statement and in a fixed
/// order (so two deliveries about one object are applied one after the other, even when its row
/// does not exist yet).
///
/// # Errors
///
/// A database error.
pub async fn lock_objects(
    client: &impl GenericClient,
    keys: &[ObjectKey<'_>],
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let texts: Vec<String> = keys.iter().map(lock_text).collect();
    let stmt = client
        .prepare_cached(
            "SELECT pg_advisory_xact_lock(h)
               FROM (SELECT DISTINCT hashtextextended(k, 0) AS h
                       FROM unnest($1::text[]) AS k
                      ORDER BY 1) AS ordered",
        )
        .await?;
    client.execute(&stmt, &[&texts]).await?;
    Ok(())
}

/// Reads the rows of `keys` (call after [`lock_objects`]); the answer is indexed like `keys`,
/// `None` where the mirror has no row.
///
/// # Errors
///
/// A database error.
pub async fn read_states(
    client: &impl GenericClient,
    keys: &[ObjectKey<'_>],
) -> Result<Vec<Option<RowState>>, StoreError> {
    let mut states = vec![None; keys.len()];
    if keys.is_empty() {
        return Ok(states);
    }
    let apps: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let collections: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.2).collect();
    let stmt = client
        .prepare_cached(
            "SELECT k.n, e.source_updated_at, e.raw_payload, e.deleted_at IS NOT NULL
               FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY
                    AS k(app_key, collection_key, external_id, n)
               JOIN supasaasy.entities e
                 ON e.app_key = k.app_key AND e.collection_key = k.collection_key
                AND e.external_id = k.external_id",
        )
        .await?;
    for row in client.query(&stmt, &[&apps, &collections, &ids]).await? {
        let n: i64 = row.get(0);
        if let Some(slot) = usize::try_from(n - 1).ok().and_then(|i| states.get_mut(i)) {
            *slot = Some(RowState {
                source_updated_at: row.get(1),
                payload: row.get(2),
                deleted: row.get(3),
            });
        }
    }
    Ok(states)
}

/// Rows to write, as column arrays for `unnest`; each row has its own app and state time.
#[derive(Default)]
pub struct ChangedRows<'a> {
    apps: Vec<&'a str>,
    api_versions: Vec<&'a str>,
    versions: Vec<DateTime<Utc>>,
    collections: Vec<&'a str>,
    ids: Vec<&'a str>,
    payloads: Vec<&'a serde_json::Value>,
    created: Vec<Option<i64>>,
    archived: Vec<bool>,
    deleted: Vec<bool>,
}

impl<'a> ChangedRows<'a> {
    /// Adds a record whose state is as of `version`; `deleted` makes it a tombstone.
    pub fn push(
        &mut self,
        app_key: &'a str,
        api_version: &'a str,
        version: DateTime<Utc>,
        record: &'a Record,
        deleted: bool,
    ) {
        self.apps.push(app_key);
        self.api_versions.push(api_version);
        self.versions.push(version);
        self.collections.push(record.collection_key);
        self.ids.push(&record.external_id);
        self.payloads.push(&record.payload);
        self.created.push(record.created);
        self.archived.push(record.archived);
        self.deleted.push(deleted);
    }

    /// No row was added.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

static WRITE_ROWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO supasaasy.entities AS e
             (app_key, collection_key, external_id, raw_payload, api_version, source_updated_at,
              source_created_at, last_seen_job, archived_at, deleted_at)
         SELECT r.app_key, r.collection_key, r.external_id, r.raw_payload, r.api_version, r.version,
                to_timestamp(r.created), NULL::uuid, CASE WHEN r.archived THEN r.version END,
                CASE WHEN r.deleted THEN now() END
           FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[],
                       $6::timestamptz[], $7::int8[], $8::bool[], $9::bool[])
                AS r(app_key, collection_key, external_id, raw_payload, api_version, version,
                     created, archived, deleted)
         {ON_CONFLICT}"
    )
});

/// Writes the rows in one statement, through the conflict rule of every write. No two rows may
/// name the same object (one statement cannot change a row twice): the caller splits them.
///
/// # Errors
///
/// A database error.
pub async fn write_rows(
    client: &impl GenericClient,
    rows: &ChangedRows<'_>,
) -> Result<u64, StoreError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let stmt = client.prepare_cached(&WRITE_ROWS).await?;
    let n = client
        .execute(
            &stmt,
            &[
                &rows.apps,
                &rows.collections,
                &rows.ids,
                &rows.payloads,
                &rows.api_versions,
                &rows.versions,
                &rows.created,
                &rows.archived,
                &rows.deleted,
            ],
        )
        .await?;
    Ok(n)
}

/// The complete children of one parent as of `version`: its other children left it.
pub struct Departures<'a> {
    /// The parent's app.
    pub app_key: &'a str,
    /// The children's collection.
    pub collection_key: &'a str,
    /// The field of a child's payload that names its parent.
    pub parent_field: &'a str,
    /// The parent's provider id.
    pub parent_id: &'a str,
    /// The children the parent has now.
    pub keep: Vec<&'a str>,
    /// The time of the parent's state.
    pub version: DateTime<Utc>,
}

/// Tombstones, for each parent, the children not in its `keep` list (they left the parent),
/// unless a newer write than the parent's state touched them. One statement per parent: parents
/// whose changes carry children are few in any batch.
///
/// # Errors
///
/// A database error.
pub async fn tombstone_departed(
    client: &impl GenericClient,
    parents: &[Departures<'_>],
) -> Result<u64, StoreError> {
    if parents.is_empty() {
        return Ok(0);
    }
    let stmt = client
        .prepare_cached(
            "UPDATE supasaasy.entities
                SET deleted_at = now(), updated_at = now(), source_updated_at = $6
              WHERE app_key = $1 AND collection_key = $2 AND raw_payload ->> $3 = $4
                AND NOT (external_id = ANY($5)) AND deleted_at IS NULL
                AND source_updated_at <= $6",
        )
        .await?;
    let mut n = 0;
    for p in parents {
        n += client
            .execute(
                &stmt,
                &[
                    &p.app_key,
                    &p.collection_key,
                    &p.parent_field,
                    &p.parent_id,
                    &p.keep,
                    &p.version,
                ],
            )
            .await?;
    }
    Ok(n)
}
