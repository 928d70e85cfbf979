//! A resource listed once per parent the mirror holds (a customer's tax ids and payment methods).
//!
//! The parents are the app's live rows of the parent collection, walked in id order a batch at a
//! time. Each batch's parents are listed at once (as many in flight as a range listing has
//! walkers, all within the app's request budget), each parent's list to its end, and the batch's
//! rows are committed with the cursor `parent:{last id}` in one fenced statement, so a task taken
//! over resumes after the last parent committed and lists at most one batch again. A run waits
//! for its job's run of the parent resource to end first, so it walks the parents that run
//! mirrored.

use chrono::Utc;
use futures_util::stream::{self, StreamExt};
use supasaasy_connector::{ConnectorError, ListOptions, Record};

use super::support::{with_retries, CallError};
use super::{ranges, Run, TaskOutcome, EVENTS_SETTLE_SECS};
use crate::store::entities;
use crate::store::jobs;
use crate::store::StoreError;

/// Parents listed per commit.
const BATCH: i64 = 100;

/// The cursor of a run that has committed every parent up to `id`.
const PREFIX: &str = "parent:";

impl Run<'_> {
    /// Lists the resource for every live row of `parents`, in batches; the last batch ends the
    /// run (a complete full run, swept only when the resource may be).
    pub(super) async fn per_parent_listing(
        &self,
        parents: &str,
    ) -> Result<TaskOutcome, StoreError> {
        if let Some(outcome) = self.wait_for_parents(parents).await? {
            return Ok(outcome);
        }
        let mut after: Option<String> = self
            .task
            .cursor
            .as_deref()
            .and_then(|c| c.strip_prefix(PREFIX))
            .map(str::to_owned);
        let mut run_started_at = self.task.run_started_at;
        let in_flight = ranges::walkers_for(self.app.requests_per_second);
        loop {
            if let Some(outcome) = self.checkpoint().await? {
                return Ok(outcome);
            }
            let ids = {
                let client = self.ctx.pool.get().await?;
                entities::live_ids_after(
                    &**client,
                    (&self.task.app_key, self.account),
                    parents,
                    after.as_deref(),
                    BATCH,
                )
                .await?
            };
            let fetched_at = Utc::now();
            let started = *run_started_at.get_or_insert(fetched_at);
            // Futures made first: a stream that maps with a closure over borrowed ids is not
            // `Send` for every lifetime, which a spawned task needs.
            let lists: Vec<_> = ids.iter().map(|id| self.children_of(id)).collect();
            let listed: Vec<Result<(Vec<Record>, u32), CallError>> =
                stream::iter(lists).buffered(in_flight).collect().await;
            let mut records = Vec::new();
            let mut requests = 0;
            for result in listed {
                match result {
                    Ok((mut found, n)) => {
                        records.append(&mut found);
                        requests += n;
                    }
                    Err(e) => return self.provider_failed(e).await,
                }
            }
            let done = ids.len() < BATCH as usize;
            let cursor = ids.last().map(|id| format!("{PREFIX}{id}"));
            let write = self.page_write(
                &records,
                records.len(),
                if done { None } else { cursor.as_deref() },
                fetched_at,
                requests,
            );
            if done {
                let events_from = started - chrono::Duration::seconds(EVENTS_SETTLE_SECS);
                return self.finish(&write, true, started, events_from).await;
            }
            let client = self.ctx.pool.get().await?;
            let refused = entities::commit_page(&client, &write).await?;
            self.written(records.len(), &refused);
            after = ids.last().cloned();
        }
    }

    /// Puts the task back while its job's run of the parent resource has not ended.
    async fn wait_for_parents(&self, parents: &str) -> Result<Option<TaskOutcome>, StoreError> {
        let Some(parent) = self
            .connector
            .resources()
            .iter()
            .find(|r| r.collection_key == parents)
        else {
            return Ok(None);
        };
        let client = self.ctx.pool.get().await?;
        if !jobs::task_unfinished(&**client, self.task, parent.name).await? {
            return Ok(None);
        }
        let delay = self.ctx.config.worker.poll_interval.as_secs_f64();
        jobs::release_task(&**client, self.task, delay, None, false).await?;
        Ok(Some(TaskOutcome::Deferred))
    }

    /// Every object of the resource under one parent, with the requests it took.
    async fn children_of(&self, parent: &str) -> Result<(Vec<Record>, u32), CallError> {
        let options = ListOptions {
            account: self.connected(),
            parent: Some(parent.to_owned()),
            created_gte: self.app.sync_from.map(|t| t.timestamp()),
            ..ListOptions::default()
        };
        let mut records = Vec::new();
        let mut requests = 0;
        let mut cursor: Option<String> = None;
        loop {
            let call = || {
                self.connector
                    .list_page(&self.task.resource_type, cursor.as_deref(), &options)
            };
            let page = with_retries(self.ctx, &self.task.app_key, self.cancel, call).await?;
            requests += page.requests;
            records.extend(page.records);
            match page.next_cursor {
                None => return Ok((records, requests)),
                Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                    return Err(CallError::Provider(ConnectorError::Retryable {
                        message: format!(
                            "the {} list of {parent} repeats {next} (app {})",
                            self.task.resource_type, self.task.app_key
                        ),
                    }))
                }
                Some(next) => cursor = Some(next),
            }
        }
    }
}
