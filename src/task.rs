//! Running one claimed sync task: page after page from the connector into the mirror.
//!
//! Each page commits with the task's next cursor in one fenced statement, so a task taken over after
//! a crash resumes at the page after the last committed one. The last page, the sweep of unseen rows
//! (full runs only), the task's end and its job's counters commit in one transaction. Retryable
//! provider errors are retried in place with backoff; when they persist the task goes back to the
//! queue (another attempt), and a fatal error fails it at once. A lost lease (job cancelled, or the
//! task taken over after our lease ran out) stops the task without another write.

use chrono::{DateTime, Utc};
use supasaasy_connector::{
    find_resource, Connector, ConnectorError, EventWindow, Incremental, ListOptions, Record,
    Resource,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::apply::{self, Action, Item, Scope};
use crate::config::{AlertKind, AppConfig, SyncMode};
use crate::connect::{self, OwnAccountError};
use crate::context::Context;
use crate::ops::alerts::Alert;
use crate::store::accounts::{self, Listed};
use crate::store::entities::{self, PageWrite, Sweep, WithParent};
use crate::store::jobs::{self, ClaimedTask, TaskEnd};
use crate::store::skipped::{self, Refused};
use crate::store::StoreError;

mod parents;
mod ranges;
pub(crate) mod support;
mod trailing;

use support::{take_exclusive, with_retries, CallError, Heartbeat};

/// The events list is eventually consistent: a window ends this long before now.
const EVENTS_SETTLE_SECS: i64 = 60;

/// How a task run ended, for the caller and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// Every page was written; the job status after it.
    Completed {
        /// The job's status after this task ended.
        job_status: String,
    },
    /// The task failed for good; the job status after it.
    Failed {
        /// Why.
        error: String,
        /// The job's status after this task ended.
        job_status: String,
    },
    /// Put back in the queue to be retried later.
    Retrying {
        /// Why.
        error: String,
    },
    /// Released at a page boundary because the daemon is stopping.
    Released,
    /// Put back in the queue unrun: another run of the same exclusive resource holds its lock.
    Deferred,
    /// Put back in the queue without spending an attempt: the app's circuit is open.
    CircuitOpen,
    /// The lease was lost (job cancelled, or taken over): nothing more was written.
    LostLease,
    /// The database failed under the task; its lease will expire and another worker resumes it.
    Interrupted {
        /// Why.
        error: String,
    },
}

/// Runs a claimed task until it ends, is released at `cancel`, or loses its lease.
pub async fn run(ctx: &Context, task: ClaimedTask, cancel: &CancellationToken) -> TaskOutcome {
    let span = tracing::info_span!("task", app = %task.app_key, resource = %task.resource_type, account = %task.account_id, job = %task.job_id);
    run_logged(ctx, task, cancel).instrument(span).await
}

async fn run_logged(ctx: &Context, task: ClaimedTask, cancel: &CancellationToken) -> TaskOutcome {
    let outcome = match run_inner(ctx, &task, cancel).await {
        Ok(outcome) => outcome,
        Err(StoreError::LostLease) => TaskOutcome::LostLease,
        Err(e) => TaskOutcome::Interrupted {
            error: e.to_string(),
        },
    };
    match &outcome {
        TaskOutcome::Completed { .. } => tracing::info!("task completed"),
        TaskOutcome::Failed { error, .. } => tracing::warn!(%error, "task failed"),
        TaskOutcome::Retrying { error } => tracing::warn!(%error, "task will be retried"),
        TaskOutcome::Released => tracing::info!("task released at a page boundary"),
        TaskOutcome::Deferred => {
            tracing::info!("task deferred: another run of the resource holds its lock")
        }
        TaskOutcome::CircuitOpen => {
            tracing::info!("task waits: the app's circuit is open")
        }
        TaskOutcome::LostLease => {
            tracing::info!("task lease lost (cancelled or taken over); stopped")
        }
        TaskOutcome::Interrupted { error } => tracing::warn!(%error, "task interrupted"),
    }
    outcome
}

/// How a task walks its resource.
enum Plan {
    /// Every object of the listing, then (when the resource may be swept) tombstone the rows not
    /// seen.
    Listing,
    /// The provider's events in a window, applied through the webhook path.
    Events(EventWindow),
    /// A resource without events: the objects that may still change fetched again, then the
    /// objects created from `from` on listed.
    Trailing {
        /// The listing's lower `created` bound.
        from: DateTime<Utc>,
    },
}

async fn run_inner(
    ctx: &Context,
    task: &ClaimedTask,
    cancel: &CancellationToken,
) -> Result<TaskOutcome, StoreError> {
    let max_attempts = ctx.config.worker.max_attempts;
    let Some((app, connector)) = ctx.app(&task.app_key) else {
        return fail(ctx, task, format!("app {} is not configured", task.app_key)).await;
    };
    let Some(resource) = find_resource(connector.as_ref(), &task.resource_type) else {
        return fail(
            ctx,
            task,
            format!("{} has no resource {}", app.connector, task.resource_type),
        )
        .await;
    };
    if task.attempts > max_attempts {
        return fail(ctx, task, format!("gave up after {max_attempts} attempts")).await;
    }
    let connected_account = Some(task.account_id.as_str()).filter(|a| !a.is_empty());
    if let Some(account) = connected_account {
        if app.connect.is_none() {
            return fail(
                ctx,
                task,
                format!("app {} has no Stripe Connect", app.app_key),
            )
            .await;
        }
        if let Some(outcome) = skip_if_deauthorized(ctx, task, account).await? {
            return Ok(outcome);
        }
    }
    let own = match connect::own_account(ctx, &task.app_key).await {
        Ok(own) => own,
        Err(OwnAccountError::Store(e)) => return Err(e),
        Err(OwnAccountError::Provider(e)) => {
            let error = format!("the app's own account is not known yet: {e}");
            let client = ctx.pool.get().await?;
            let delay = ctx.config.worker.retry_base.as_secs_f64() * 20.0;
            jobs::release_task(&**client, task, delay, Some(&error), true).await?;
            return Ok(TaskOutcome::Retrying { error });
        }
    };
    let heartbeat = Heartbeat::start(ctx, task, ctx.config.worker.lease);
    let run = Run {
        ctx,
        task,
        app,
        connector: connector.as_ref(),
        resource,
        cancel,
        lost: &heartbeat.lost,
        own: &own,
        account: connected_account.unwrap_or(&own),
        connected_account,
    };
    // A resource the provider lets one client walk at a time (one open scroll per account) runs
    // under a lock held for the whole run, across every daemon sharing the database.
    let exclusive = if resource.exclusive {
        match take_exclusive(ctx, task).await? {
            Some(lock) => Some(lock),
            None => {
                let client = ctx.pool.get().await?;
                let delay = ctx.config.worker.retry_base.as_secs_f64() * 20.0;
                jobs::release_task(&**client, task, delay, None, false).await?;
                return Ok(TaskOutcome::Deferred);
            }
        }
    } else {
        None
    };
    let outcome = match plan(ctx, task, app, resource).await {
        Ok(Plan::Listing) => match resource.per_parent {
            Some(parents) => run.per_parent_listing(parents).await,
            None => run.listing().await,
        },
        Ok(Plan::Events(window)) => match run.retry_skipped().await {
            Ok(None) => run.events(window).await,
            Ok(Some(outcome)) => Ok(outcome),
            Err(e) => Err(e),
        },
        Ok(Plan::Trailing { from }) => match run.retry_skipped().await {
            Ok(None) => run.trailing(from).await,
            Ok(Some(outcome)) => Ok(outcome),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if let Some(lock) = exclusive {
        lock.release().await;
    }
    outcome
}

/// Decides, at an incremental task's first claim, whether it reads events (or lists a trailing
/// window) or must run a full sync (no cursor yet, or one older than the provider keeps events),
/// and records the decision; a resumed task finds the same window.
async fn plan(
    ctx: &Context,
    task: &ClaimedTask,
    app: &AppConfig,
    resource: Resource,
) -> Result<Plan, StoreError> {
    let trailing = match resource.incremental {
        // Resources without incremental sync take a full pass (with its sweep) every time.
        Incremental::FullPass => return Ok(Plan::Listing),
        _ if task.mode == SyncMode::Full || task.note.is_some() => return Ok(Plan::Listing),
        Incremental::Events => false,
        Incremental::Trailing { .. } => true,
    };
    let client = ctx.pool.get().await?;
    let start = jobs::incremental_cursor(&**client, task).await?;
    let planned = |start: Option<DateTime<Utc>>, end: DateTime<Utc>| {
        let start = start.unwrap_or(DateTime::UNIX_EPOCH).min(end);
        if trailing {
            Plan::Trailing {
                from: start.min(end - app.trailing_window),
            }
        } else {
            Plan::Events(EventWindow {
                created_gt: start.timestamp(),
                created_lte: end.timestamp(),
            })
        }
    };
    if let Some(end) = task.window_end {
        return Ok(planned(start, end));
    }
    let now = Utc::now();
    // A provider that keeps events a while cannot catch up a cursor older than that (with a
    // day's margin).
    let too_old = app
        .connector
        .event_retention_days
        .filter(|_| !trailing)
        .is_some_and(|days| start.is_some_and(|t| now - t > chrono::Duration::days(days - 1)));
    let note = match start {
        None => Some("no incremental cursor yet: ran a full sync".to_owned()),
        Some(_) if too_old => Some(format!(
            "incremental cursor older than {} days (events are kept {}): ran a full sync",
            app.connector.event_retention_days.unwrap_or_default() - 1,
            app.connector.event_retention_days.unwrap_or_default()
        )),
        Some(_) => None,
    };
    // The events list is eventually consistent: read only up to a minute ago. A trailing
    // listing reads up to now, and its window reaches back further than that.
    let end = if trailing {
        now
    } else {
        now - chrono::Duration::seconds(EVENTS_SETTLE_SECS)
    };
    let window_end = note.is_none().then_some(end);
    jobs::plan_incremental(&**client, task, window_end, note.as_deref()).await?;
    Ok(match note {
        None => {
            tracing::info!(from = ?start, to = %end, "incremental sync");
            planned(start, end)
        }
        Some(note) => {
            tracing::info!(note, "incremental sync runs as a full sync");
            Plan::Listing
        }
    })
}

/// One run of a claimed task.
struct Run<'a> {
    ctx: &'a Context,
    task: &'a ClaimedTask,
    app: &'a AppConfig,
    connector: &'a dyn Connector,
    resource: Resource,
    cancel: &'a CancellationToken,
    /// Fires when the heartbeat finds the lease lost.
    lost: &'a CancellationToken,
    /// The account the app's key belongs to (`''` without Stripe Connect).
    own: &'a str,
    /// The account whose rows the run writes: the connected account's, or the app's own.
    account: &'a str,
    /// The connected account the run's requests are made in (Stripe Connect), if any.
    connected_account: Option<&'a str>,
}

impl Run<'_> {
    /// The connected account to list in, as listing options carry it.
    fn connected(&self) -> Option<String> {
        self.connected_account.map(str::to_owned)
    }

    /// Between pages: stop when the lease is lost; release the task when the daemon is stopping.
    async fn checkpoint(&self) -> Result<Option<TaskOutcome>, StoreError> {
        if self.lost.is_cancelled() {
            return Err(StoreError::LostLease);
        }
        if self.cancel.is_cancelled() {
            let client = self.ctx.pool.get().await?;
            jobs::release_task(&**client, self.task, 0.0, None, false).await?;
            return Ok(Some(TaskOutcome::Released));
        }
        Ok(None)
    }

    /// A provider call that did not succeed. An open circuit puts the task back without spending
    /// an attempt; an error that in-place retries did not cure puts it back while attempts remain
    /// and the error may pass, else the task fails.
    async fn provider_failed(&self, e: CallError) -> Result<TaskOutcome, StoreError> {
        let e = match e {
            CallError::Provider(e @ ConnectorError::AccountRefused { .. }) => {
                if let Some(account) = self.connected_account {
                    if let Some(outcome) =
                        skip_if_deauthorized(self.ctx, self.task, account).await?
                    {
                        return Ok(outcome);
                    }
                }
                e
            }
            CallError::Provider(e) => e,
            CallError::CircuitOpen(wait) => {
                let client = self.ctx.pool.get().await?;
                let note = "waiting: the app's circuit is open";
                jobs::release_task(&**client, self.task, wait.as_secs_f64(), Some(note), false)
                    .await?;
                return Ok(TaskOutcome::CircuitOpen);
            }
        };
        let error = e.to_string();
        if e.is_retryable() && self.task.attempts < self.ctx.config.worker.max_attempts {
            let base = self.ctx.config.worker.retry_base.as_secs_f64() * 20.0;
            let delay = base * 2f64.powi(self.task.attempts - 1);
            let client = self.ctx.pool.get().await?;
            jobs::release_task(&**client, self.task, delay, Some(&error), true).await?;
            return Ok(TaskOutcome::Retrying { error });
        }
        fail(self.ctx, self.task, error).await
    }

    fn page_write<'b>(
        &'b self,
        records: &'b [Record],
        count: usize,
        next: Option<&'b str>,
        fetched_at: DateTime<Utc>,
        requests: u32,
    ) -> PageWrite<'b> {
        PageWrite {
            left_out: &[],
            task_id: self.task.id,
            lease_id: self.task.lease_id,
            job_id: self.task.job_id,
            app_key: &self.task.app_key,
            account_id: self.account,
            api_version: self.connector.api_version(),
            records,
            count,
            next_cursor: next,
            fetched_at,
            requests,
            lease_secs: self.ctx.config.worker.lease.as_secs_f64(),
        }
    }

    /// Walks the resource's listing; the last page sweeps the rows not seen. A splittable
    /// resource walks `created` ranges at once (see [`ranges`]), unless the task resumes a
    /// sequential run's provider cursor.
    async fn listing(&self) -> Result<TaskOutcome, StoreError> {
        if self.resource.splittable {
            let resume = match self.task.cursor.as_deref().map(ranges::decode) {
                None => Some(None),
                Some(Some(Ok(state))) if state.iter().any(|r| !r.done) => Some(Some(state)),
                Some(Some(Ok(_))) => Some(None),
                Some(Some(Err(e))) => {
                    tracing::warn!(error = %e, "unreadable range state: the listing starts over");
                    Some(None)
                }
                Some(None) => None,
            };
            if let Some(resume) = resume {
                if let Some(outcome) = self.checkpoint().await? {
                    return Ok(outcome);
                }
                return self.ranged_listing(resume).await;
            }
        }
        let walk = Walk {
            from: self.app.sync_from,
            full: true,
        };
        self.sequential(self.task.cursor.clone(), walk).await
    }

    /// Walks a listing one page at a time from `cursor`, the next page fetched while the current
    /// one is written, and ends the run as `walk` says. A list that refuses the `created` filter
    /// is walked again without it from where it stood, and objects created before `walk.from` are
    /// left out here.
    async fn sequential(
        &self,
        cursor: Option<String>,
        walk: Walk,
    ) -> Result<TaskOutcome, StoreError> {
        let from = walk.from.map(|t| t.timestamp());
        let mut options = ListOptions {
            account: self.connected(),
            created_gte: from,
            ..ListOptions::default()
        };
        let fetch = |cursor: Option<String>, options: ListOptions| async move {
            let slot = self.page_slot().await;
            let fetched_at = Utc::now();
            let call = || {
                self.connector
                    .list_page(&self.task.resource_type, cursor.as_deref(), &options)
            };
            let page = with_retries(self.ctx, &self.task.app_key, self.cancel, call).await;
            page.map(|p| (p, fetched_at, slot))
        };
        let mut run_started_at = self.task.run_started_at;
        if let Some(outcome) = self.checkpoint().await? {
            return Ok(outcome);
        }
        let mut current = cursor;
        let mut next = fetch(current.clone(), options.clone()).await;
        loop {
            let (mut page, fetched_at, slot) = match next {
                Ok(fetched) => fetched,
                Err(CallError::Provider(ConnectorError::FilterRefused { message }))
                    if options.created_gte.is_some() =>
                {
                    tracing::warn!(%message, "the list refuses the created filter: walking it unfiltered");
                    options.created_gte = None;
                    next = fetch(current.clone(), options.clone()).await;
                    continue;
                }
                Err(e) => return self.provider_failed(e).await,
            };
            if let (None, Some(from)) = (options.created_gte, from) {
                page.records
                    .retain(|r| r.created.is_none_or(|created| created >= from));
            }
            let started = *run_started_at.get_or_insert(fetched_at);
            let left_out = left_out(&page);
            let Some(cursor) = page.next_cursor.clone() else {
                let write = PageWrite {
                    left_out: &left_out,
                    ..self.page_write(
                        &page.records,
                        page.records.len(),
                        None,
                        fetched_at,
                        page.requests,
                    )
                };
                // Events from a minute before the listing began on are what an incremental run
                // reads next.
                let events_from = started - chrono::Duration::seconds(EVENTS_SETTLE_SECS);
                return self.finish(&write, walk.full, started, events_from).await;
            };
            // The next page is fetched while this one is written; if the run stops here, the
            // next owner fetches it again (with the page in hand, at most two pages twice). The
            // page goes with its commit, so it is not held while the next waits for the budget.
            let commit = async move {
                let write = PageWrite {
                    left_out: &left_out,
                    ..self.page_write(
                        &page.records,
                        page.records.len(),
                        page.next_cursor.as_deref(),
                        fetched_at,
                        page.requests,
                    )
                };
                let client = self.ctx.pool.get().await?;
                let refused = entities::commit_page(&client, &write).await?;
                self.written(page.records.len() + left_out.len(), &refused);
                drop(slot);
                Ok::<_, StoreError>(())
            };
            current = Some(cursor.clone());
            let (committed, fetched) = tokio::join!(commit, fetch(Some(cursor), options.clone()));
            committed?;
            next = fetched;
            if let Some(outcome) = self.checkpoint().await? {
                return Ok(outcome);
            }
        }
    }

    /// Reads the events of the window page by page and applies them through the webhook path;
    /// the incremental cursor moves to the window's end only when the whole window is applied.
    async fn events(&self, window: EventWindow) -> Result<TaskOutcome, StoreError> {
        let mut cursor = self.task.cursor.clone();
        let mut run_started_at = self.task.run_started_at;
        loop {
            if let Some(outcome) = self.checkpoint().await? {
                return Ok(outcome);
            }
            let fetched_at = Utc::now();
            let fetch = || {
                self.connector.list_events(
                    &self.task.resource_type,
                    cursor.as_deref(),
                    &window,
                    self.connected_account,
                )
            };
            let page = match with_retries(self.ctx, &self.task.app_key, self.cancel, fetch).await {
                Ok(page) => page,
                Err(e) => return self.provider_failed(e).await,
            };
            let started = *run_started_at.get_or_insert(fetched_at);
            // The page's events are applied together, in one transaction.
            let items: Vec<Item> = page
                .events
                .iter()
                .map(|event| Item {
                    app_key: &self.task.app_key,
                    scope: Scope {
                        own: self.own,
                        connected: self.connected_account,
                    },
                    connector: self.connector,
                    event,
                    source: "events_api",
                    run: Some((self.task.job_id, self.task.id)),
                    breakers: Some(&self.ctx.ops.breakers),
                })
                .collect();
            let outcomes = apply::apply_guarded(&self.ctx.pool, &items).await?;
            self.record_ignored(&page.events);
            let mut applied = 0;
            for (outcome, event) in outcomes.into_iter().zip(&page.events) {
                match outcome {
                    Ok(Action::Applied) => applied += 1,
                    Ok(Action::Quarantined) => self.quarantined(event, "events_api"),
                    Ok(_) => {}
                    Err(e) => return self.provider_failed(CallError::Provider(e)).await,
                }
            }
            let write = self.page_write(
                &[],
                applied,
                page.next_cursor.as_deref(),
                fetched_at,
                page.requests,
            );
            if page.next_cursor.is_some() {
                let client = self.ctx.pool.get().await?;
                entities::commit_page(&client, &write).await?;
                cursor = page.next_cursor;
                continue;
            }
            let until = DateTime::from_timestamp(window.created_lte, 0).unwrap_or(started);
            return self.finish(&write, false, started, until).await;
        }
    }

    /// Commits the run's last page and, in the same transaction, sweeps what a full run did not
    /// see (when the resource may be swept), records the run, moves the incremental cursor to `events_until`, and ends the task.
    async fn finish(
        &self,
        write: &PageWrite<'_>,
        full: bool,
        started: DateTime<Utc>,
        events_until: DateTime<Utc>,
    ) -> Result<TaskOutcome, StoreError> {
        let mut client = self.ctx.pool.get().await?;
        // The rows first, on their own (fenced by the lease like every page): an object the
        // database refuses is left out there, which a transaction could not survive.
        let refused = entities::write_page_rows(&client, write).await?;
        let listed = write.records.len() + write.left_out.len();
        let write = PageWrite {
            records: &[],
            left_out: &[],
            count: write.count.saturating_sub(refused.len()),
            ..*write
        };
        let tx = client.transaction().await?;
        entities::commit_page(&tx, &write).await?;
        if full {
            let keys: Vec<&str> = self.resource.collection_keys().collect();
            let own = (self.task.app_key.as_str(), self.account);
            skipped::clear_after_full_run(&*tx, own, &keys, self.task.job_id).await?;
            if self.resource.sweep {
                let resource = &self.resource;
                let sweep = sweep_of(self.app, self.account, self.task, resource, &keys, started);
                let swept = entities::sweep_unseen(&*tx, &sweep).await?;
                if swept > 0 {
                    tracing::info!(swept, "tombstoned rows the full run did not see");
                }
            }
        }
        if self.resource.connected_accounts {
            self.add_account_tasks(&*tx, started).await?;
        }
        let version = self.connector.api_version();
        jobs::record_complete_run(&*tx, self.task, full, started, events_until, version).await?;
        let end = jobs::finish_task(&*tx, self.task, None).await?;
        tx.commit().await?;
        self.written(listed, &refused);
        job_ended(self.ctx, &end);
        Ok(TaskOutcome::Completed {
            job_status: end.job_status,
        })
    }

    /// After a complete listing of the connected accounts: the job's other resources, once per
    /// listed account the app mirrors that has not taken its access away.
    async fn add_account_tasks(
        &self,
        tx: &impl tokio_postgres::GenericClient,
        started: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(connect) = &self.app.connect else {
            return Ok(());
        };
        let listed = Listed {
            app_key: &self.task.app_key,
            own: self.account,
            collection_key: self.resource.collection_key,
            job_id: self.task.job_id,
            run_started_at: started,
        };
        let mut ids = accounts::listed_authorized(tx, &listed).await?;
        ids.retain(|id| connect.accounts.includes(id));
        let exclude: Vec<&str> = self
            .connector
            .resources()
            .iter()
            .filter(|r| r.connected_accounts)
            .map(|r| r.name)
            .collect();
        let added = jobs::add_account_tasks(tx, self.task, &exclude, &ids).await?;
        tracing::info!(
            accounts = ids.len(),
            tasks = added,
            "connected accounts to sync"
        );
        Ok(())
    }

    /// Tells the operator of each event of a mapped type that was ignored, and why (as a webhook
    /// of it would be).
    fn record_ignored(&self, events: &[supasaasy_connector::Event]) {
        for event in events {
            if let Some(reason) = &event.ignored_reason {
                self.ctx.ops.events.record(
                    Some(&self.task.app_key),
                    self.app.connector.service,
                    &event.event_type,
                    "ignored",
                    serde_json::json!({"event_id": event.id, "reason": reason, "source": "events_api"}),
                );
            }
        }
    }

    /// An event whose objects the database refused was quarantined: told to the operator.
    fn quarantined(&self, event: &supasaasy_connector::Event, source: &str) {
        tracing::warn!(event = %event.id, "the database refused a value of an event's objects: they were left out and the event quarantined");
        for change in &event.changes {
            let metrics = &self.ctx.ops.metrics;
            metrics.objects_skipped(&self.task.app_key, change.resource, source);
        }
        self.ctx.ops.events.record(
            Some(&self.task.app_key),
            self.app.connector.service,
            &event.event_type,
            "quarantined",
            serde_json::json!({"event_id": event.id, "source": source, "job_id": self.task.job_id.to_string()}),
        );
    }

    /// A place for one listed page in memory ([`Context::pages`]), waited for in the turn of the
    /// run's app and account.
    async fn page_slot(&self) -> PageSlot {
        let key = format!("{}\u{1f}{}", self.task.app_key, self.account);
        self.ctx.pages.acquire(&key).await
    }

    /// A page of `n` objects was committed, of which the database refused `refused`: counted,
    /// and each refused one told to the operator by its collection, id and reason.
    fn written(&self, n: usize, refused: &[Refused]) {
        let n = n.saturating_sub(refused.len());
        let metrics = &self.ctx.ops.metrics;
        if n > 0 {
            metrics.objects_written(&self.task.app_key, &self.task.resource_type, n as u64);
        }
        for r in refused {
            tracing::warn!(collection = %r.collection_key, id = %r.external_id, reason = %r.reason, "an object the database refuses was left out; the next run tries it again");
            metrics.objects_skipped(&self.task.app_key, &self.task.resource_type, "sync");
            self.ctx.ops.events.record(
                Some(&self.task.app_key),
                self.app.connector.service,
                "object_skipped",
                "skipped",
                serde_json::json!({
                    "resource": self.task.resource_type,
                    "collection_key": r.collection_key,
                    "external_id": r.external_id,
                    "account_id": self.account,
                    "reason": r.reason,
                    "source": "sync",
                    "job_id": self.task.job_id.to_string(),
                }),
            );
        }
    }
}

/// The objects a listed page left out, as the mirror records them.
fn left_out(page: &supasaasy_connector::Page) -> Vec<Refused> {
    let skipped = page.skipped.iter();
    skipped
        .map(|s| Refused::new(s.collection_key, &s.external_id, &*s.reason))
        .collect()
}

/// A listed page's place in memory, held until its rows are written.
type PageSlot = crate::slots::Slot;

/// How a sequential listing walks and ends.
struct Walk {
    /// Objects created before this are left out.
    from: Option<DateTime<Utc>>,
    /// A full run: it may sweep, and it records a complete full run.
    full: bool,
}

/// The sweep of a complete full run of `resource` (which writes `keys`): its unseen rows, and its
/// children's, unseen too or, when the provider may serve only part of them, with their swept
/// parents.
fn sweep_of<'a>(
    app: &'a AppConfig,
    account_id: &'a str,
    task: &ClaimedTask,
    resource: &'a Resource,
    keys: &'a [&'a str],
    run_started_at: DateTime<Utc>,
) -> Sweep<'a> {
    let (collection_keys, with_parent) = match resource.children_swept_with_parent {
        Some(parent_field) => (
            std::slice::from_ref(&resource.collection_key),
            Some(WithParent {
                parent_collection: resource.collection_key,
                child_collections: resource.child_collection_keys,
                parent_field,
            }),
        ),
        None => (keys, None),
    };
    Sweep {
        app_key: &app.app_key,
        account_id,
        collection_keys,
        with_parent,
        job_id: task.job_id,
        run_started_at,
        created_from: app.sync_from,
    }
}

/// Ends `task` unrun when its connected account took the app's access away.
async fn skip_if_deauthorized(
    ctx: &Context,
    task: &ClaimedTask,
    account: &str,
) -> Result<Option<TaskOutcome>, StoreError> {
    let mut client = ctx.pool.get().await?;
    let Some(at) = accounts::deauthorized_at(&**client, &task.app_key, account).await? else {
        return Ok(None);
    };
    let note = format!(
        "account {account} took the app's access away at {}: not synced, its rows are kept",
        at.to_rfc3339()
    );
    let tx = client.transaction().await?;
    let end = jobs::skip_task(&*tx, task, &note).await?;
    tx.commit().await?;
    tracing::info!(%note, "task skipped");
    job_ended(ctx, &end);
    Ok(Some(TaskOutcome::Completed {
        job_status: end.job_status,
    }))
}

async fn fail(ctx: &Context, task: &ClaimedTask, error: String) -> Result<TaskOutcome, StoreError> {
    let mut client = ctx.pool.get().await?;
    let tx = client.transaction().await?;
    let end = jobs::finish_task(&*tx, task, Some(&error)).await?;
    tx.commit().await?;
    job_ended(ctx, &end);
    Ok(TaskOutcome::Failed {
        error,
        job_status: end.job_status,
    })
}

/// When `task` ended its job: the job's duration metric, and an alert when it failed.
fn job_ended(ctx: &Context, end: &TaskEnd) {
    let Some(job) = &end.job_ended else { return };
    let ops = &ctx.ops;
    ops.metrics
        .job_ended(&job.app_key, &job.mode, &job.status, job.duration_secs);
    if job.status == "failed" {
        let error = job.error_message.as_deref().unwrap_or("unknown error");
        ops.alerts.raise(Alert {
            kind: AlertKind::JobFailed,
            app_key: job.app_key.clone(),
            title: format!("supasaasy: sync failed for {}", job.app_key),
            message: format!(
                "The {} sync job {} of app {} failed (resource: error): {error}",
                job.mode, job.job_id, job.app_key
            ),
        });
    }
}
