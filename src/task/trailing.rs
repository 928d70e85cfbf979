//! Incremental runs of a resource the provider sends no events for (Stripe's balance
//! transactions): what may still change is fetched again, then what is new is listed.
//!
//! First the mirrored objects created before the window whose payload still says they may change
//! (`status` `pending`) are fetched one by one, least recently refreshed first, and written as
//! pages; then the listing walks the objects created from the window's start on (the last run's
//! start, or further back by the app's `trailing_window_hours`). The listing never sweeps: it
//! sees a window, not the whole. A task that has begun its listing (it has a cursor) does not
//! fetch again.
//!
//! Every incremental run of a resource that can be fetched also fetches again, first, the objects
//! the mirror could not store before (`skipped_entities`, [`Run::retry_skipped`]): the events that
//! carried them are not delivered again.

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use supasaasy_connector::{Change, ConnectorError, Incremental, Record};

use super::support::{with_retries, CallError};
use super::{Run, TaskOutcome, Walk};
use crate::store::entities::{self, PageWrite};
use crate::store::skipped::{self, Refused};
use crate::store::StoreError;

/// Objects fetched again per page written.
const BATCH: usize = 100;
/// At most this many are fetched again per run, least recently refreshed first.
const MAX_REFETCH: i64 = 10_000;
/// Fetches in flight at once.
const IN_FLIGHT: usize = 8;
/// At most this many skipped objects are tried again per incremental run, oldest refusal first.
const MAX_RETRY: i64 = 1_000;

impl Run<'_> {
    /// Fetches again what may still change, then lists what was created from `from` on.
    pub(super) async fn trailing(&self, from: DateTime<Utc>) -> Result<TaskOutcome, StoreError> {
        if let (Incremental::Trailing { field, value }, None) =
            (self.resource.incremental, &self.task.cursor)
        {
            if let Some(outcome) = self.refetch(field, value, from).await? {
                return Ok(outcome);
            }
        }
        let from = match self.app.sync_from {
            Some(sync_from) => from.max(sync_from),
            None => from,
        };
        let walk = Walk {
            from: Some(from),
            full: false,
        };
        self.sequential(self.task.cursor.clone(), walk).await
    }

    /// Fetches again the objects created before `before` whose payload's `field` reads `value`.
    async fn refetch(
        &self,
        field: &str,
        value: &str,
        before: DateTime<Utc>,
    ) -> Result<Option<TaskOutcome>, StoreError> {
        let ids = {
            let client = self.ctx.pool.get().await?;
            entities::ids_where(
                &**client,
                (&self.task.app_key, self.account),
                self.resource.collection_key,
                (field, value),
                before,
                MAX_REFETCH,
            )
            .await?
        };
        if !ids.is_empty() {
            tracing::info!(
                count = ids.len(),
                field,
                value,
                "fetching again what may still change"
            );
        }
        self.fetch_again(&ids, false).await
    }

    /// At an incremental run's start (not when it resumes): fetches again the objects of the
    /// resource the mirror could not store before, and forgets those it now stores.
    pub(super) async fn retry_skipped(&self) -> Result<Option<TaskOutcome>, StoreError> {
        if self.task.cursor.is_some() || !self.resource.fetchable {
            return Ok(None);
        }
        let own = (self.task.app_key.as_str(), self.account);
        let collection_key = self.resource.collection_key;
        let ids = {
            let client = self.ctx.pool.get().await?;
            skipped::ids(&**client, own, collection_key, MAX_RETRY).await?
        };
        if ids.is_empty() {
            return Ok(None);
        }
        tracing::info!(
            count = ids.len(),
            "fetching again the objects the mirror could not store before"
        );
        if let Some(outcome) = self.fetch_again(&ids, true).await? {
            return Ok(Some(outcome));
        }
        let client = self.ctx.pool.get().await?;
        let job_id = self.task.job_id;
        skipped::forget_retried(&**client, own, collection_key, &ids, job_id).await?;
        Ok(None)
    }

    /// Fetches `ids` again and writes them, a page per batch. With `tolerant`, an object the
    /// provider refuses for good (an id it does not take) is left out and recorded as skipped
    /// again, instead of failing the run.
    async fn fetch_again(
        &self,
        ids: &[String],
        tolerant: bool,
    ) -> Result<Option<TaskOutcome>, StoreError> {
        for chunk in ids.chunks(BATCH) {
            if let Some(outcome) = self.checkpoint().await? {
                return Ok(Some(outcome));
            }
            let fetched_at = Utc::now();
            let fetches: Vec<_> = chunk.iter().map(|id| self.fetch_one(id)).collect();
            let fetched: Vec<_> = stream::iter(fetches).buffered(IN_FLIGHT).collect().await;
            let mut records: Vec<Record> = Vec::with_capacity(chunk.len());
            let mut left_out = Vec::new();
            for (result, id) in fetched.into_iter().zip(chunk) {
                match result {
                    // An object the mirror could not store that the provider no longer has by
                    // that id (gone, or an id the mirror could only store altered) stays
                    // recorded until a full run lists the resource again.
                    Ok(change) if change.deleted && tolerant => {
                        let collection_key = self.resource.collection_key;
                        let reason = "the provider has no object by this id now; kept until a full run lists the resource again";
                        left_out.push(Refused::new(collection_key, id, reason));
                    }
                    // An object gone from the provider is left to the next full run's sweep.
                    Ok(change) if change.deleted => {}
                    Ok(change) => records.push(change.record),
                    Err(CallError::Provider(
                        e @ (ConnectorError::Fatal { .. } | ConnectorError::Retryable { .. }),
                    )) if tolerant => {
                        let collection_key = self.resource.collection_key;
                        left_out.push(Refused::new(collection_key, id, e.to_string()));
                    }
                    Err(e) => return self.provider_failed(e).await.map(Some),
                }
            }
            let write = PageWrite {
                left_out: &left_out,
                ..self.page_write(
                    &records,
                    records.len(),
                    None,
                    fetched_at,
                    chunk.len() as u32,
                )
            };
            let client = self.ctx.pool.get().await?;
            let refused = entities::commit_page(&client, &write).await?;
            self.written(records.len() + left_out.len(), &refused);
        }
        Ok(None)
    }

    /// One object's state now, through the circuit breaker and in-place retries.
    async fn fetch_one(&self, id: &str) -> Result<Change, CallError> {
        let call = || {
            self.connector
                .fetch_object(&self.task.resource_type, id, self.connected_account)
        };
        with_retries(self.ctx, &self.task.app_key, self.cancel, call).await
    }
}
