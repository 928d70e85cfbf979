//! The account an app's own rows belong to (Stripe Connect).
//!
//! A Connect app keys its own objects by the id of the account its key belongs to (Stripe's
//! `GET /v1/account`) and its connected accounts' objects by theirs. The id is read once per
//! process, before the app's first write; the first time it is known, the app's rows written
//! before accounts were recorded (`account_id = ''`) are given it in batches, under a lock every
//! daemon sharing the database takes, and that is recorded in `supasaasy.app_accounts`. An app
//! without Connect keeps `''`: all of its rows are its key's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use supasaasy_connector::{Connector, ConnectorError};
use tokio::sync::OnceCell;

use crate::context::Context;
use crate::store::locks::SessionLock;
use crate::store::{accounts, StoreError};

/// Rows given the app's account per statement while adopting older rows.
const ADOPT_BATCH: i64 = 50_000;

/// Tries of `GET /v1/account` before giving up for now.
const TRIES: u32 = 3;

/// Why an app's own account is not known yet; the caller tries again later.
#[derive(Debug, thiserror::Error)]
pub enum OwnAccountError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The provider did not answer, and no earlier answer is stored.
    #[error("reading the app's own account: {0}")]
    Provider(ConnectorError),
}

impl From<tokio_postgres::Error> for OwnAccountError {
    fn from(e: tokio_postgres::Error) -> Self {
        OwnAccountError::Store(e.into())
    }
}

/// Each app's own account id, read at most once per process.
#[derive(Clone, Default)]
pub struct OwnAccounts {
    cells: Arc<HashMap<String, OnceCell<String>>>,
}

impl OwnAccounts {
    /// One empty cell per app of `app_keys` that has Connect enabled.
    pub fn new<'a>(connect_apps: impl IntoIterator<Item = &'a str>) -> OwnAccounts {
        OwnAccounts {
            cells: Arc::new(
                connect_apps
                    .into_iter()
                    .map(|a| (a.to_owned(), OnceCell::new()))
                    .collect(),
            ),
        }
    }
}

/// The account `app_key`'s own rows are written in: `''` for an app without Connect, else its
/// key's account id, resolved (and older rows adopted) the first time it is asked for.
///
/// # Errors
///
/// [`OwnAccountError`] when the id cannot be known yet.
pub async fn own_account(ctx: &Context, app_key: &str) -> Result<String, OwnAccountError> {
    let Some(cell) = ctx.own_accounts.cells.get(app_key) else {
        return Ok(String::new());
    };
    let Some((_, connector)) = ctx.app(app_key) else {
        return Ok(String::new());
    };
    cell.get_or_try_init(|| resolve(ctx, app_key, connector.as_ref()))
        .await
        .cloned()
}

async fn resolve(
    ctx: &Context,
    app_key: &str,
    connector: &dyn Connector,
) -> Result<String, OwnAccountError> {
    let stored = {
        let client = ctx.pool.get().await.map_err(StoreError::from)?;
        accounts::stored_own(&**client, app_key).await?
    };
    let mut tries = 0;
    let id = loop {
        tries += 1;
        match connector.own_account().await {
            Ok(id) => break id,
            Err(e) if e.is_retryable() && tries < TRIES => {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(tries))).await;
            }
            Err(e) => match &stored {
                Some(id) => {
                    tracing::warn!(app = app_key, error = %e, account = %id,
                        "could not read the app's own account; using the one read before");
                    return Ok(id.clone());
                }
                None if !e.is_retryable() => {
                    // A key that may not read its account (a restricted key without that
                    // permission): its own rows keep no account id.
                    tracing::warn!(app = app_key, error = %e,
                        "the app's key may not read its own account (GET /v1/account): its own rows keep account_id ''");
                    return Ok(String::new());
                }
                None => return Err(OwnAccountError::Provider(e)),
            },
        }
    };
    if stored.as_deref() == Some(id.as_str()) {
        return Ok(id);
    }
    if let Some(before) = &stored {
        tracing::warn!(app = app_key, before = %before, now = %id,
            "the app's key belongs to another account than before: new rows are written in the new one");
    }
    adopt(ctx, app_key, connector, &id).await?;
    Ok(id)
}

/// Gives the app's rows without an account `account_id`, under a lock so that one daemon does it
/// while the others wait, then records it.
async fn adopt(
    ctx: &Context,
    app_key: &str,
    connector: &dyn Connector,
    account_id: &str,
) -> Result<(), OwnAccountError> {
    let key = format!("supasaasy.own_account:{app_key}");
    let lock = SessionLock::take(&ctx.pool, key).await?;
    let client = &***lock.client();
    let adopted = async {
        // Another daemon may have done it while this one waited for the lock.
        if accounts::stored_own(client, app_key).await?.as_deref() == Some(account_id) {
            return Ok::<_, StoreError>(0);
        }
        let started = Instant::now();
        let mut total = 0;
        for resource in connector.resources() {
            for collection in resource.collection_keys() {
                loop {
                    let n =
                        accounts::adopt_batch(client, app_key, collection, account_id, ADOPT_BATCH)
                            .await?;
                    total += n;
                    if n < ADOPT_BATCH as u64 {
                        break;
                    }
                    tracing::info!(
                        app = app_key,
                        collection,
                        adopted = total,
                        "giving the app's older rows its account id"
                    );
                }
            }
        }
        accounts::record_own(client, app_key, account_id).await?;
        tracing::info!(
            app = app_key,
            account = account_id,
            rows = total,
            secs = started.elapsed().as_secs_f64(),
            "the app's own account is recorded"
        );
        Ok(total)
    }
    .await;
    lock.release().await;
    adopted?;
    Ok(())
}
