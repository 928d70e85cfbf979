//! Objects the mirror could not store (`supasaasy.skipped_entities`): a value Postgres refuses, or
//! an answer that was not the object asked for. One such object never holds up the others: the
//! write path ([`super::entities`], and the events' [`crate::apply`]) writes the rest and records
//! it here, and the next run that meets it tries it again. A complete full run of the resource
//! that no longer refuses it removes its row ([`clear_after_full_run`]).

use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::{jsonb, StoreError};

/// One object left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The collection its row would be in.
    pub collection_key: String,
    /// The provider's id (a character Postgres cannot hold replaced by U+FFFD).
    pub external_id: String,
    /// What refused it.
    pub reason: String,
}

impl Refused {
    /// An object of `collection_key` left out for `reason`.
    pub fn new(collection_key: &str, external_id: &str, reason: impl Into<String>) -> Refused {
        Refused {
            collection_key: collection_key.to_owned(),
            external_id: storable(external_id),
            reason: storable(&reason.into()),
        }
    }
}

/// `text` cut to 2,000 characters, with what a Postgres `text` cannot hold replaced
/// ([`jsonb::text`]).
fn storable(text: &str) -> String {
    let end = text
        .char_indices()
        .nth(2_000)
        .map_or(text.len(), |(i, _)| i);
    jsonb::text(&text[..end]).into_owned()
}

/// Where refused objects came from.
pub struct Origin<'a> {
    /// The app.
    pub app_key: &'a str,
    /// The account the rows would be in.
    pub account_id: &'a str,
    /// `sync`, `webhook` or `events_api`.
    pub source: &'a str,
    /// The run that met them, if any.
    pub job_id: Option<Uuid>,
    /// The task of that run, which counts them with its job.
    pub task_id: Option<Uuid>,
    /// The event that carried them, if any.
    pub event_id: Option<&'a str>,
}

/// Records refused objects, in one statement: a new row, or the last refusal and one more
/// attempt on an existing one. Their existing mirror rows are marked as seen by `origin`'s run
/// (so that run's sweep does not take them for deleted), and the run's task and job count them.
///
/// # Errors
///
/// A database error.
pub async fn record(
    client: &impl deadpool_postgres::GenericClient,
    origin: &Origin<'_>,
    refused: &[Refused],
) -> Result<(), StoreError> {
    if refused.is_empty() {
        return Ok(());
    }
    let collections: Vec<&str> = refused.iter().map(|r| r.collection_key.as_str()).collect();
    let ids: Vec<&str> = refused.iter().map(|r| r.external_id.as_str()).collect();
    let reasons: Vec<&str> = refused.iter().map(|r| r.reason.as_str()).collect();
    let stmt = client
        .prepare_cached(
            "WITH r AS (
                SELECT DISTINCT ON (collection_key, external_id) *
                  FROM unnest($3::text[], $4::text[], $5::text[])
                       AS r(collection_key, external_id, reason)
             ),
             skipped AS (
                INSERT INTO supasaasy.skipped_entities AS s
                    (app_key, account_id, collection_key, external_id, reason, source, job_id,
                     event_id)
                SELECT $1, $2, r.collection_key, r.external_id, r.reason, $6, $7, $8 FROM r
                ON CONFLICT (app_key, collection_key, account_id, external_id) DO UPDATE SET
                    reason = excluded.reason, source = excluded.source, job_id = excluded.job_id,
                    event_id = excluded.event_id, last_skipped_at = now(),
                    attempts = s.attempts + 1
             ),
             seen AS (
                UPDATE supasaasy.entities e SET last_seen_job = $7
                  FROM r
                 WHERE $7::uuid IS NOT NULL AND e.app_key = $1 AND e.account_id = $2
                   AND e.collection_key = r.collection_key AND e.external_id = r.external_id
             ),
             task AS (
                UPDATE supasaasy.sync_tasks SET skipped_entities = skipped_entities + $10
                 WHERE id = $9
             )
             UPDATE supasaasy.sync_jobs SET skipped_entities = skipped_entities + $10
              WHERE id = $7 AND $9::uuid IS NOT NULL",
        )
        .await?;
    client
        .execute(
            &stmt,
            &[
                &origin.app_key,
                &origin.account_id,
                &collections,
                &ids,
                &reasons,
                &origin.source,
                &origin.job_id,
                &origin.event_id,
                &origin.task_id,
                &(refused.len() as i64),
            ],
        )
        .await?;
    Ok(())
}

/// After a complete full run of a resource: forgets the objects of its collections that the run
/// did not refuse (it wrote them, or they are gone).
///
/// # Errors
///
/// A database error.
pub async fn clear_after_full_run(
    client: &impl GenericClient,
    (app_key, account_id): (&str, &str),
    collection_keys: &[&str],
    job_id: Uuid,
) -> Result<u64, StoreError> {
    let n = client
        .execute(
            "DELETE FROM supasaasy.skipped_entities
              WHERE app_key = $1 AND account_id = $2 AND collection_key = ANY($3)
                AND job_id IS DISTINCT FROM $4",
            &[&app_key, &account_id, &collection_keys, &job_id],
        )
        .await?;
    Ok(n)
}

/// After `ids` were fetched again by the run `job_id`: forgets those it did not refuse again.
///
/// # Errors
///
/// A database error.
pub async fn forget_retried(
    client: &impl GenericClient,
    (app_key, account_id): (&str, &str),
    collection_key: &str,
    ids: &[String],
    job_id: Uuid,
) -> Result<u64, StoreError> {
    let n = client
        .execute(
            "DELETE FROM supasaasy.skipped_entities
              WHERE app_key = $1 AND account_id = $2 AND collection_key = $3
                AND external_id = ANY($4) AND job_id IS DISTINCT FROM $5",
            &[&app_key, &account_id, &collection_key, &ids, &job_id],
        )
        .await?;
    Ok(n)
}

/// Up to `limit` ids of `collection_key`'s objects the mirror could not store, oldest refusal
/// first: what an incremental run fetches again.
///
/// # Errors
///
/// A database error.
pub async fn ids(
    client: &impl GenericClient,
    (app_key, account_id): (&str, &str),
    collection_key: &str,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let rows = client
        .query(
            "SELECT external_id FROM supasaasy.skipped_entities
              WHERE app_key = $1 AND account_id = $2 AND collection_key = $3
              ORDER BY last_skipped_at, external_id
              LIMIT $4",
            &[&app_key, &account_id, &collection_key, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
