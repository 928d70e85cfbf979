//! The accounts an app's rows belong to (`supasaasy.app_accounts`, `supasaasy.connected_accounts`):
//! the account each app's key belongs to, the older rows given it, and the connected accounts
//! that took a Stripe Connect platform's access away.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::StoreError;

/// The account id last read for `app_key`'s key, once its older rows were given it.
///
/// # Errors
///
/// A database error.
pub async fn stored_own(
    client: &impl GenericClient,
    app_key: &str,
) -> Result<Option<String>, StoreError> {
    let row = client
        .query_opt(
            "SELECT account_id FROM supasaasy.app_accounts WHERE app_key = $1",
            &[&app_key],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Gives up to `limit` of the app's rows of `collection_key` that have no account (written before
/// accounts were recorded) the account `account_id`; the rows changed. Call again while it
/// changes a whole batch.
///
/// # Errors
///
/// A database error.
pub async fn adopt_batch(
    client: &impl GenericClient,
    app_key: &str,
    collection_key: &str,
    account_id: &str,
    limit: i64,
) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "UPDATE supasaasy.entities SET account_id = $3
              WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM supasaasy.entities
                     WHERE app_key = $1 AND collection_key = $2 AND account_id = ''
                     LIMIT $4))",
            &[&app_key, &collection_key, &account_id, &limit],
        )
        .await?)
}

/// Records that `app_key`'s key belongs to `account_id` and that its rows without an account were
/// given it.
///
/// # Errors
///
/// A database error.
pub async fn record_own(
    client: &impl GenericClient,
    app_key: &str,
    account_id: &str,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO supasaasy.app_accounts (app_key, account_id) VALUES ($1, $2)
             ON CONFLICT (app_key) DO UPDATE SET account_id = excluded.account_id, learned_at = now()",
            &[&app_key, &account_id],
        )
        .await?;
    Ok(())
}

/// Marks each `(app, account, event created)` as deauthorized at the event's time (the latest
/// such time wins).
///
/// # Errors
///
/// A database error.
pub async fn deauthorize(
    client: &impl deadpool_postgres::GenericClient,
    accounts: &[(&str, &str, i64)],
) -> Result<(), StoreError> {
    if accounts.is_empty() {
        return Ok(());
    }
    let apps: Vec<&str> = accounts.iter().map(|a| a.0).collect();
    let ids: Vec<&str> = accounts.iter().map(|a| a.1).collect();
    let at: Vec<i64> = accounts.iter().map(|a| a.2).collect();
    client
        .execute(
            "INSERT INTO supasaasy.connected_accounts AS c (app_key, account_id, deauthorized_at)
             SELECT app, account, max(to_timestamp(at))
               FROM unnest($1::text[], $2::text[], $3::int8[]) AS d(app, account, at)
              GROUP BY app, account
             ON CONFLICT (app_key, account_id) DO UPDATE
                SET deauthorized_at = GREATEST(c.deauthorized_at, excluded.deauthorized_at),
                    updated_at = now()",
            &[&apps, &ids, &at],
        )
        .await?;
    Ok(())
}

/// When `account` took `app_key`'s access away, if it did (and was not listed again since).
///
/// # Errors
///
/// A database error.
pub async fn deauthorized_at(
    client: &impl GenericClient,
    app_key: &str,
    account: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = client
        .query_opt(
            "SELECT deauthorized_at FROM supasaasy.connected_accounts
              WHERE app_key = $1 AND account_id = $2",
            &[&app_key, &account],
        )
        .await?;
    Ok(row.and_then(|r| r.get(0)))
}

/// What a complete listing of an app's connected accounts saw.
pub struct Listed<'a> {
    /// The app.
    pub app_key: &'a str,
    /// The app's own account, which the accounts' rows belong to.
    pub own: &'a str,
    /// The accounts' collection.
    pub collection_key: &'a str,
    /// The job whose run listed them.
    pub job_id: uuid::Uuid,
    /// When the run's first page was fetched.
    pub run_started_at: DateTime<Utc>,
}

/// The accounts the run listed that have not taken the app's access away, in id order. An
/// account deauthorized before the run began and listed by it was connected again: its mark is
/// cleared first.
///
/// # Errors
///
/// A database error.
pub async fn listed_authorized(
    client: &impl GenericClient,
    listed: &Listed<'_>,
) -> Result<Vec<String>, StoreError> {
    let seen = "SELECT external_id FROM supasaasy.entities
                 WHERE app_key = $1 AND collection_key = $2 AND account_id = $3
                   AND last_seen_job = $4 AND deleted_at IS NULL";
    client
        .execute(
            &format!(
                "UPDATE supasaasy.connected_accounts SET deauthorized_at = NULL, updated_at = now()
                  WHERE app_key = $1 AND deauthorized_at < $5 AND account_id IN ({seen})"
            ),
            &[
                &listed.app_key,
                &listed.collection_key,
                &listed.own,
                &listed.job_id,
                &listed.run_started_at,
            ],
        )
        .await?;
    let rows = client
        .query(
            &format!(
                "{seen} AND external_id NOT IN (
                    SELECT account_id FROM supasaasy.connected_accounts
                     WHERE app_key = $1 AND deauthorized_at IS NOT NULL)
                 ORDER BY external_id"
            ),
            &[
                &listed.app_key,
                &listed.collection_key,
                &listed.own,
                &listed.job_id,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
