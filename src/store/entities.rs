//! The one write path into the mirror, `supasaasy.entities`.
//!
//! A page of records goes in as one statement: the arrays of the page are `unnest`ed into an
//! `INSERT ... ON CONFLICT DO UPDATE ... WHERE`, in the same statement as the fenced update of the
//! task's cursor and counters, so the page and the cursor commit together or not at all, and a
//! worker that lost its lease writes nothing. The range walkers of one task write their pages'
//! rows side by side ([`write_page_rows`], fenced by the lease too) and then commit the cursor past
//! them in turn; a stop in between writes a page twice, which changes nothing. Events' changes
//! go through the same conflict rule ([`super::changes`]).
//!
//! Invariants of every write:
//! - a row's state is replaced only by state at least as new (`source_updated_at`); equal time
//!   refreshes, older changes nothing;
//! - a row whose state did not change is not rewritten, except to record the run that saw it;
//! - rows are never deleted: a deletion sets `deleted_at`, and only newer state clears it.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use supasaasy_connector::Record;
use tokio_postgres::types::Type;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::jsonb::Jsonb;
use super::skipped::{self, Origin, Refused};
use super::{literal, StoreError};

/// The conflict rule shared by every write into `entities`: newer-or-equal state replaces, older
/// changes nothing, unchanged rows are only marked as seen.
pub(super) const ON_CONFLICT: &str = "
ON CONFLICT (app_key, collection_key, account_id, external_id) DO UPDATE SET
    raw_payload = CASE WHEN excluded.source_updated_at >= e.source_updated_at
                       THEN excluded.raw_payload ELSE e.raw_payload END,
    api_version = CASE WHEN excluded.source_updated_at >= e.source_updated_at
                       THEN excluded.api_version ELSE e.api_version END,
    deleted_at = CASE WHEN excluded.source_updated_at >= e.source_updated_at
                      THEN excluded.deleted_at ELSE e.deleted_at END,
    archived_at = CASE WHEN excluded.source_updated_at < e.source_updated_at THEN e.archived_at
                       WHEN excluded.archived_at IS NULL THEN NULL
                       ELSE COALESCE(e.archived_at, excluded.archived_at) END,
    source_updated_at = GREATEST(e.source_updated_at, excluded.source_updated_at),
    source_created_at = COALESCE(excluded.source_created_at, e.source_created_at),
    last_seen_job = COALESCE(excluded.last_seen_job, e.last_seen_job),
    updated_at = CASE WHEN excluded.source_updated_at >= e.source_updated_at
                       AND (e.raw_payload IS DISTINCT FROM excluded.raw_payload
                            OR e.deleted_at IS DISTINCT FROM excluded.deleted_at)
                      THEN now() ELSE e.updated_at END
WHERE (excluded.last_seen_job IS NOT NULL AND e.last_seen_job IS DISTINCT FROM excluded.last_seen_job)
   OR (excluded.source_updated_at >= e.source_updated_at
       AND (e.raw_payload IS DISTINCT FROM excluded.raw_payload
            OR e.deleted_at IS DISTINCT FROM excluded.deleted_at
            OR (e.archived_at IS NULL) <> (excluded.archived_at IS NULL)))";

/// A page's records as column arrays, for `unnest`.
#[derive(Default)]
pub(super) struct Columns<'a> {
    pub collections: Vec<&'a str>,
    pub ids: Vec<&'a str>,
    pub payloads: Vec<Jsonb<'a, supasaasy_connector::Payload>>,
    pub created: Vec<Option<i64>>,
    pub archived: Vec<bool>,
}

impl<'a> Columns<'a> {
    fn of(records: impl Iterator<Item = &'a Record>) -> Columns<'a> {
        let mut c = Columns::default();
        for r in records {
            c.push(r);
        }
        c
    }

    pub(super) fn push(&mut self, r: &'a Record) {
        self.collections.push(r.collection_key);
        self.ids.push(r.external_id.as_str());
        self.payloads.push(Jsonb(&r.payload));
        self.created.push(r.created);
        self.archived.push(r.archived);
    }
}

/// One page of a running task, ready to commit.
pub struct PageWrite<'a> {
    /// The task and the lease that fences the write.
    pub task_id: Uuid,
    /// The lease id handed out when the task was claimed.
    pub lease_id: Uuid,
    /// The job the task belongs to (recorded as the run that saw each row).
    pub job_id: Uuid,
    /// The app the rows belong to.
    pub app_key: &'a str,
    /// The account the rows belong to (`''` for a provider without accounts).
    pub account_id: &'a str,
    /// The connector's pinned API version.
    pub api_version: &'a str,
    /// The records of the page.
    pub records: &'a [Record],
    /// Objects of the page the connector left out (recorded as skipped with the page).
    pub left_out: &'a [Refused],
    /// What the page adds to the task's and job's entity counts.
    pub count: usize,
    /// The cursor of the next page; `None` after the last page.
    pub next_cursor: Option<&'a str>,
    /// When the page request was sent: the provider state's time.
    pub fetched_at: DateTime<Utc>,
    /// Provider requests the page took.
    pub requests: u32,
    /// How long the lease is extended by.
    pub lease_secs: f64,
}

/// The parameters of both page statements, in order (a statement that leaves some unused still
/// knows their types): cursor, count, requests, fetched at, lease seconds, task, lease, app, API
/// version, job, the page's columns, then the account.
const PAGE_PARAMS: [Type; 16] = [
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::FLOAT8,
    Type::UUID,
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::UUID,
    Type::TEXT_ARRAY,
    Type::TEXT_ARRAY,
    Type::JSONB_ARRAY,
    Type::INT8_ARRAY,
    Type::BOOL_ARRAY,
    Type::TEXT,
];

/// A page statement: the `task` CTE(s) given, then the page's rows, written only when `task` has
/// a row (the lease is ours); answers the tasks matched.
fn page_statement(task: &str) -> String {
    format!(
        "WITH {task},
         written AS (
            INSERT INTO supasaasy.entities AS e
                (app_key, account_id, collection_key, external_id, raw_payload, api_version,
                 source_updated_at, source_created_at, last_seen_job, archived_at, deleted_at)
            SELECT $8, $16, r.collection_key, r.external_id, r.raw_payload, $9, $4,
                   to_timestamp(r.created), $10, CASE WHEN r.archived THEN $4 END, NULL
              FROM unnest($11::text[], $12::text[], $13::jsonb[], $14::int8[], $15::bool[])
                   AS r(collection_key, external_id, raw_payload, created, archived)
             WHERE EXISTS (SELECT 1 FROM task)
            {ON_CONFLICT}
         )
         SELECT count(*) FROM task"
    )
}

static COMMIT_PAGE: LazyLock<String> = LazyLock::new(|| {
    page_statement(
        "task AS (
            UPDATE supasaasy.sync_tasks
               SET cursor = $1,
                   pages = pages + 1,
                   entity_count = entity_count + $2,
                   requests = requests + $3,
                   run_started_at = COALESCE(run_started_at, $4),
                   lease_expires_at = now() + make_interval(secs => $5),
                   updated_at = now()
             WHERE id = $6 AND lease_id = $7 AND status = 'processing'
         RETURNING job_id
         ),
         job AS (
            UPDATE supasaasy.sync_jobs SET processed_entities = processed_entities + $2
             WHERE id = (SELECT job_id FROM task)
         )",
    )
});

static WRITE_PAGE_ROWS: LazyLock<String> = LazyLock::new(|| {
    page_statement(
        "task AS (
            SELECT 1 FROM supasaasy.sync_tasks
             WHERE id = $6 AND lease_id = $7 AND status = 'processing'
         )",
    )
});

/// Up to `limit` ids of the app's live rows of `collection_key` in `account_id` after `after`, in
/// id order (the parents a resource listed per parent walks).
///
/// # Errors
///
/// A database error.
pub async fn live_ids_after(
    client: &impl GenericClient,
    (app_key, account_id): (&str, &str),
    collection_key: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = client
        .query(
            "SELECT external_id FROM supasaasy.entities
              WHERE app_key = $1 AND collection_key = $2 AND account_id = $5
                AND deleted_at IS NULL AND external_id > COALESCE($3, '')
              ORDER BY external_id
              LIMIT $4",
            &[&app_key, &collection_key, &after, &limit, &account_id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Up to `limit` ids of the app's live rows of `collection_key` in `account_id` whose payload's `field` reads
/// `value` and that were created before `before` (or when is unknown), least recently written
/// first: the objects that may still change.
///
/// # Errors
///
/// A database error.
pub async fn ids_where(
    client: &impl GenericClient,
    (app_key, account_id): (&str, &str),
    collection_key: &str,
    (field, value): (&str, &str),
    before: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = client
        .query(
            "SELECT external_id FROM supasaasy.entities
              WHERE app_key = $1 AND collection_key = $2 AND account_id = $7
                AND deleted_at IS NULL AND raw_payload ->> $3 = $4
                AND (source_created_at IS NULL OR source_created_at < $5)
              ORDER BY source_updated_at, external_id
              LIMIT $6",
            &[
                &app_key,
                &collection_key,
                &field,
                &value,
                &before,
                &limit,
                &account_id,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Commits a page: the records, the task's next cursor and counters, and the job's entity count,
/// as one statement fenced by the task's lease.
///
/// # Errors
///
/// [`StoreError::LostLease`] when the lease is no longer ours (nothing was written); a database
/// error otherwise.
pub async fn commit_page(
    client: &impl deadpool_postgres::GenericClient,
    page: &PageWrite<'_>,
) -> Result<Vec<Refused>, StoreError> {
    run_page(client, &COMMIT_PAGE, page, true).await
}

/// Writes a page's records alone, fenced by the task's lease but leaving the task's row alone, so
/// pages of one task (its `created` ranges) are written side by side; the cursor that moves past
/// them is committed afterwards with [`commit_page`] (a stop in between fetches the page again,
/// and writing it again changes nothing).
///
/// # Errors
///
/// [`StoreError::LostLease`] when the lease is no longer ours (nothing was written); a database
/// error otherwise.
pub async fn write_page_rows(
    client: &impl deadpool_postgres::GenericClient,
    page: &PageWrite<'_>,
) -> Result<Vec<Refused>, StoreError> {
    // A pooled connection keeps a buffer as large as the largest statement it sent: a page of
    // large objects (invoices with their lines) goes in a few statements, not one.
    let mut refused = Vec::new();
    for (n, chunk) in statement_chunks(page.records, STATEMENT_BYTES)
        .into_iter()
        .enumerate()
    {
        let part = PageWrite {
            records: chunk,
            left_out: if n == 0 { page.left_out } else { &[] },
            ..*page
        };
        refused.extend(run_page(client, &WRITE_PAGE_ROWS, &part, false).await?);
    }
    Ok(refused)
}

/// `records` cut in runs of about `max_bytes` of payload (a record larger than that alone); at
/// least one run, empty for no records, so an empty page still learns whether the lease is ours.
fn statement_chunks(records: &[Record], max_bytes: usize) -> Vec<&[Record]> {
    let mut chunks = Vec::new();
    let mut rest = records;
    loop {
        let mut bytes = 0;
        let n = rest
            .iter()
            .take_while(|r| {
                bytes += r.payload.len_hint();
                bytes <= max_bytes
            })
            .count()
            .max(1)
            .min(rest.len());
        let (chunk, after) = rest.split_at(n);
        chunks.push(chunk);
        rest = after;
        if rest.is_empty() {
            return chunks;
        }
    }
}

/// About the most payload bytes one side-by-side row write sends.
const STATEMENT_BYTES: usize = 128 * 1024;

/// Runs a page statement. When the database refuses a value of the page, the objects it refuses
/// are found by halving the page, the others are written, the refused ones are recorded
/// ([`skipped::record`]), and the statement runs again without the page's rows (moving the
/// cursor when `moves_cursor`); the refused objects are answered. Call outside a transaction:
/// a refused statement would abort it.
async fn run_page(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    page: &PageWrite<'_>,
    moves_cursor: bool,
) -> Result<Vec<Refused>, StoreError> {
    let origin = Origin {
        app_key: page.app_key,
        account_id: page.account_id,
        source: "sync",
        job_id: Some(page.job_id),
        task_id: Some(page.task_id),
        event_id: None,
    };
    match run_statement(client, sql, page).await {
        Err(e) if e.is_refused_value() && !page.records.is_empty() => {
            tracing::warn!(app = page.app_key, error = %e, "the database refused a value of a page: finding the objects it refuses");
        }
        Ok(()) if !page.left_out.is_empty() => {
            skipped::record(client, &origin, page.left_out).await?;
            return Ok(page.left_out.to_vec());
        }
        other => return other.map(|()| Vec::new()),
    }
    let mut refused = Vec::new();
    let mut parts = vec![page.records];
    while let Some(records) = parts.pop() {
        let part = PageWrite { records, ..*page };
        match run_statement(client, &WRITE_PAGE_ROWS, &part).await {
            Ok(()) => {}
            Err(e) if e.is_refused_value() => match records {
                [one] => refused.push(Refused::new(
                    one.collection_key,
                    &one.external_id,
                    e.to_string(),
                )),
                _ => {
                    let (first, second) = records.split_at(records.len() / 2);
                    parts.push(second);
                    parts.push(first);
                }
            },
            Err(e) => return Err(e),
        }
    }
    let by_database = refused.len();
    refused.extend(page.left_out.iter().cloned());
    skipped::record(client, &origin, &refused).await?;
    if moves_cursor {
        let rest = PageWrite {
            records: &[],
            count: page.count.saturating_sub(by_database),
            ..*page
        };
        run_statement(client, sql, &rest).await?;
    }
    Ok(refused)
}

async fn run_statement(
    client: &impl deadpool_postgres::GenericClient,
    sql: &str,
    page: &PageWrite<'_>,
) -> Result<(), StoreError> {
    let columns = Columns::of(page.records.iter());
    let stmt = client.prepare_typed_cached(sql, &PAGE_PARAMS).await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &page.next_cursor,
                &(page.count as i64),
                &(page.requests as i64),
                &page.fetched_at,
                &page.lease_secs,
                &page.task_id,
                &page.lease_id,
                &page.app_key,
                &page.api_version,
                &page.job_id,
                &columns.collections,
                &columns.ids,
                &columns.payloads,
                &columns.created,
                &columns.archived,
                &page.account_id,
            ],
        )
        .await?;
    let tasks: i64 = row.get(0);
    if tasks == 0 {
        return Err(StoreError::LostLease);
    }
    Ok(())
}

/// What a sweep covers: the rows of a resource that a complete full run did not see.
pub struct Sweep<'a> {
    /// The app whose rows are swept.
    pub app_key: &'a str,
    /// The account whose rows are swept.
    pub account_id: &'a str,
    /// The collections whose unseen rows are tombstoned: the resource's, and its children's
    /// unless they go with their parents.
    pub collection_keys: &'a [&'a str],
    /// Children that go with their parents instead: the provider may serve only part of them,
    /// so a child is tombstoned with the parent the sweep tombstones, never for being unseen.
    pub with_parent: Option<WithParent<'a>>,
    /// The run: rows it saw carry its id.
    pub job_id: Uuid,
    /// When the run's first page was fetched: rows written after it (by a webhook, say) are newer
    /// than the run and are left alone.
    pub run_started_at: DateTime<Utc>,
    /// The run only listed objects created at or after this; older rows are left alone.
    pub created_from: Option<DateTime<Utc>>,
}

/// Children tombstoned with their swept parents ([`Sweep::with_parent`]).
pub struct WithParent<'a> {
    /// The parents' collection.
    pub parent_collection: &'a str,
    /// The children's collections.
    pub child_collections: &'a [&'a str],
    /// The field of a child's payload naming its parent.
    pub parent_field: &'a str,
}

/// Tombstones the rows a complete full run did not see, and the children of those that go with
/// their parents. Call only after a complete, error-free run, in the transaction that completes
/// it. Returns the rows tombstoned.
///
/// # Errors
///
/// A database error.
pub async fn sweep_unseen(
    client: &impl GenericClient,
    sweep: &Sweep<'_>,
) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            &sweep_sql(sweep.with_parent.as_ref()),
            &[
                &sweep.app_key,
                &sweep.collection_keys,
                &sweep.job_id,
                &sweep.run_started_at,
                &sweep.created_from,
                &sweep.account_id,
            ],
        )
        .await?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// The sweep's statement: the unseen rows, then for children that go with their parents, those
/// of the parents just swept. A child's collection and parent field are written out as literals
/// so Postgres finds a parent's children through their partial index (migration V6).
fn sweep_sql(with_parent: Option<&WithParent<'_>>) -> String {
    let mut sql = String::from(
        "WITH swept AS (
            UPDATE supasaasy.entities
               SET deleted_at = now(), updated_at = now()
             WHERE app_key = $1
               AND collection_key = ANY($2)
               AND deleted_at IS NULL
               AND last_seen_job IS DISTINCT FROM $3
               AND source_updated_at < $4
               AND ($5::timestamptz IS NULL OR source_created_at IS NULL OR source_created_at >= $5)
               AND account_id = $6
            RETURNING collection_key, external_id)",
    );
    let mut counts = vec!["(SELECT count(*) FROM swept)".to_owned()];
    for (n, child) in with_parent
        .iter()
        .flat_map(|w| w.child_collections.iter().map(move |c| (w, c)))
        .enumerate()
    {
        let (w, child) = child;
        sql.push_str(&format!(
            ",
         children_{n} AS (
            UPDATE supasaasy.entities c
               SET deleted_at = now(), updated_at = now()
              FROM swept p
             WHERE p.collection_key = {parent}
               AND c.app_key = $1 AND c.collection_key = {child}
               AND c.raw_payload ->> {field} = p.external_id
               AND c.account_id = $6 AND c.deleted_at IS NULL
            RETURNING 1)",
            parent = literal(w.parent_collection),
            child = literal(child),
            field = literal(w.parent_field),
        ));
        counts.push(format!("(SELECT count(*) FROM children_{n})"));
    }
    sql.push_str("\nSELECT ");
    sql.push_str(&counts.join(" + "));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use supasaasy_connector::Payload;

    fn record(bytes: usize) -> Record {
        let text = format!("{{\"id\":\"x\",\"pad\":\"{}\"}}", "a".repeat(bytes));
        Record {
            collection_key: "stripe_invoice",
            external_id: "x".into(),
            payload: Payload::Raw(serde_json::value::RawValue::from_string(text).unwrap()),
            created: None,
            archived: false,
        }
    }

    #[test]
    fn pages_are_cut_by_payload_bytes_and_none_is_lost() {
        let records: Vec<Record> = (0..10).map(|_| record(300)).collect();
        let lens = |chunks: Vec<&[Record]>| chunks.iter().map(|c| c.len()).collect::<Vec<_>>();
        assert_eq!(lens(statement_chunks(&records, 1000)), vec![3, 3, 3, 1]);
        assert_eq!(lens(statement_chunks(&records, 100_000)), vec![10]);
        // A record larger than the bound goes alone; an empty page is one empty statement.
        assert_eq!(lens(statement_chunks(&records, 10)), vec![1; 10]);
        assert_eq!(lens(statement_chunks(&[], 10)), vec![0]);
    }
}
