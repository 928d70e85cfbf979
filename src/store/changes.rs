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

use super::entities::{Columns, ON_CONFLICT};
use super::{literal, StoreError};

/// An object of the mirror: app, account, collection, provider id.
pub type ObjectKey<'a> = (&'a str, &'a str, &'a str, &'a str);

/// The advisory lock key of an object.
fn lock_text((app_key, account_id, collection_key, external_id): &ObjectKey<'_>) -> String {
    format!("{app_key}\u{1f}{account_id}\u{1f}{collection_key}\u{1f}{external_id}")
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

/// What the mirror holds of one object, read under the object's lock.
#[derive(Debug, Clone)]
pub struct RowState {
    /// The time of the state the row holds.
    pub source_updated_at: DateTime<Utc>,
    /// The object as last written, when its state is at least as new as the time asked for (only
    /// then is it compared with a change).
    pub payload: Option<serde_json::Value>,
    /// The row is a tombstone.
    pub deleted: bool,
}

/// Reads the rows of `keys` (call after [`lock_objects`]); the answer is indexed like `keys`,
/// `None` where the mirror has no row. `keys` must be sorted and without repeats. Payloads are
/// read only for rows at least as new as `payloads_from`.
///
/// # Errors
///
/// A database error.
pub async fn read_states(
    client: &impl GenericClient,
    keys: &[ObjectKey<'_>],
    payloads_from: DateTime<Utc>,
) -> Result<Vec<Option<RowState>>, StoreError> {
    let mut states = vec![None; keys.len()];
    if keys.is_empty() {
        return Ok(states);
    }
    // Each column as a set of values: the primary key's index is searched for every combination
    // (few apps and collections in a batch), and the combinations not asked for are dropped here.
    // A join on the arrays would be planned afresh on every call.
    let mut apps: Vec<&str> = keys.iter().map(|k| k.0).collect();
    let mut accounts: Vec<&str> = keys.iter().map(|k| k.1).collect();
    let mut collections: Vec<&str> = keys.iter().map(|k| k.2).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.3).collect();
    for column in [&mut apps, &mut accounts, &mut collections] {
        column.sort_unstable();
        column.dedup();
    }
    let stmt = client
        .prepare_cached(
            "SELECT app_key, account_id, collection_key, external_id, source_updated_at,
                    CASE WHEN source_updated_at >= $4 THEN raw_payload END,
                    deleted_at IS NOT NULL
               FROM supasaasy.entities
              WHERE app_key = ANY($1) AND collection_key = ANY($2) AND account_id = ANY($5)
                AND external_id = ANY($3)",
        )
        .await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&apps, &collections, &ids, &payloads_from, &accounts];
    for row in client.query(&stmt, &params).await? {
        let key: ObjectKey = (row.get(0), row.get(1), row.get(2), row.get(3));
        if let Ok(i) = keys.binary_search(&key) {
            states[i] = Some(RowState {
                source_updated_at: row.get(4),
                payload: row.get(5),
                deleted: row.get(6),
            });
        }
    }
    Ok(states)
}

/// Rows to write, as column arrays for `unnest`; each row has its own app, account and state
/// time.
#[derive(Default)]
pub struct ChangedRows<'a> {
    apps: Vec<&'a str>,
    accounts: Vec<&'a str>,
    api_versions: Vec<&'a str>,
    versions: Vec<DateTime<Utc>>,
    records: Columns<'a>,
    deleted: Vec<bool>,
}

impl<'a> ChangedRows<'a> {
    /// Adds a record whose state is as of `version`; `deleted` makes it a tombstone.
    pub fn push(
        &mut self,
        (app_key, account_id): (&'a str, &'a str),
        api_version: &'a str,
        version: DateTime<Utc>,
        record: &'a Record,
        deleted: bool,
    ) {
        self.apps.push(app_key);
        self.accounts.push(account_id);
        self.api_versions.push(api_version);
        self.versions.push(version);
        self.records.push(record);
        self.deleted.push(deleted);
    }

    /// No row was added.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}

static WRITE_ROWS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO supasaasy.entities AS e
             (app_key, account_id, collection_key, external_id, raw_payload, api_version,
              source_updated_at, source_created_at, last_seen_job, archived_at, deleted_at)
         SELECT r.app_key, r.account_id, r.collection_key, r.external_id, r.raw_payload, r.api_version, r.version,
                to_timestamp(r.created), NULL::uuid, CASE WHEN r.archived THEN r.version END,
                CASE WHEN r.deleted THEN now() END
           FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[],
                       $6::timestamptz[], $7::int8[], $8::bool[], $9::bool[], $10::text[])
                AS r(app_key, collection_key, external_id, raw_payload, api_version, version,
                     created, archived, deleted, account_id)
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
                &rows.records.collections,
                &rows.records.ids,
                &rows.records.payloads,
                &rows.api_versions,
                &rows.versions,
                &rows.records.created,
                &rows.records.archived,
                &rows.deleted,
                &rows.accounts,
            ],
        )
        .await?;
    Ok(n)
}

/// The complete children of one parent as of `version`: its other children left it.
pub struct Departures<'a> {
    /// The parent's app.
    pub app_key: &'a str,
    /// The parent's account.
    pub account_id: &'a str,
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
    let mut n = 0;
    for p in parents {
        let stmt = client
            .prepare_cached(&departed_sql(p.collection_key, p.parent_field))
            .await?;
        n += client
            .execute(
                &stmt,
                &[&p.app_key, &p.parent_id, &p.keep, &p.version, &p.account_id],
            )
            .await?;
    }
    Ok(n)
}

/// The statement tombstoning one parent's departed children. The collection and the parent
/// field are written out as literals (they are the connectors' constants), so Postgres can use the
/// partial index on the children's parent field (migration V6) rather than read every child of
/// the app, as it must with a parameter there.
fn departed_sql(collection_key: &str, parent_field: &str) -> String {
    format!(
        "UPDATE supasaasy.entities
            SET deleted_at = now(), updated_at = now(), source_updated_at = $4
          WHERE app_key = $1 AND collection_key = {} AND raw_payload ->> {} = $2
            AND account_id = $5 AND NOT (external_id = ANY($3)) AND deleted_at IS NULL
            AND source_updated_at <= $4",
        literal(collection_key),
        literal(parent_field)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departed_children_are_found_by_their_literal_parent_field() {
        let sql = departed_sql("stripe_subscription_item", "subscription");
        assert!(
            sql.contains("collection_key = 'stripe_subscription_item'"),
            "{sql}"
        );
        assert!(sql.contains("raw_payload ->> 'subscription' = $2"), "{sql}");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
