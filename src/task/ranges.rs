//! A full listing of a splittable resource, walked as several `created` ranges at once.
//!
//! The listing starts as one range `[sync_from or 0, now + 1)` over `created` (Unix seconds, `gte`
//! inclusive, `lt` exclusive). A walker that gets a page with more behind it, while fewer ranges
//! than the task's walkers are left to walk, splits what remains of its range: the provider lists
//! newest first, so everything the walker has seen was created at or after the oldest object of
//! the page, `oldest`; the walker keeps `[mid, lt)` and carries on from its cursor, and a new range
//! `[gte, mid)` is walked by another walker, for a `mid` with `gte < mid <= oldest`. Objects
//! created in the same second as `mid` are all at or after it, so each object is in exactly one
//! range, and the walker's cursor object (created `oldest`) stays inside its narrowed range.
//!
//! Fetches run concurrently, and so do the writes of the pages' rows (each fenced by the task's
//! lease). The commits that move the cursor are serialized by a lock around the range state, held
//! across the commit: once a page's rows are written, its walker commits the whole state after it
//! as the task's cursor (`ranges:` and a JSON array), so a task taken over resumes every
//! unfinished range at its cursor, and at worst fetches and writes again a page whose rows went
//! in just before the stop. The walker that finishes the last range commits its page with the sweep and the end of
//! the task, as a sequential run does.

use chrono::{DateTime, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use supasaasy_connector::{ConnectorError, ListOptions, Page};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::support::{with_retries, CallError};
use super::{PageSlot, Run, TaskOutcome, Walk, EVENTS_SETTLE_SECS};
use crate::store::entities::{self, PageWrite};
use crate::store::jobs;
use crate::store::StoreError;

/// Ranges walked at once by one task when the app has no request budget, or a small one.
const MIN_WALKERS: usize = 8;
/// Ranges walked at once by one task at most.
const MAX_WALKERS: usize = 32;
/// Requests per second one walker is counted on for: a walker has about one request in flight,
/// so this is for provider latencies up to 250 ms.
const REQUESTS_PER_WALKER: f64 = 4.0;
/// Ranges one run may have in all (done ones included): bounds the state written with each page.
const MAX_RANGES: usize = 128;
/// A range narrower than this (in seconds) is not split.
const MIN_SPLIT_SECS: i64 = 2;
/// What a task's cursor starts with when it holds range state rather than a provider cursor.
const PREFIX: &str = "ranges:";

/// One range of `created` times and how far its walk got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Range {
    /// Objects created at or after this Unix second.
    pub gte: i64,
    /// Objects created before this Unix second.
    pub lt: i64,
    /// The provider cursor of the range's next page; `None` before its first page.
    pub after: Option<String>,
    /// Every page of the range is committed.
    pub done: bool,
}

impl Range {
    /// The listing options of the range's pages.
    fn options(&self) -> ListOptions {
        ListOptions {
            created_gte: Some(self.gte),
            created_lt: Some(self.lt),
            ..ListOptions::default()
        }
    }
}

/// The ranges of a run as written to the task's cursor.
pub(super) fn encode(ranges: &[Range]) -> String {
    // Serializing plain integers, strings and bools cannot fail.
    let json = serde_json::to_string(ranges).unwrap_or_else(|_| "[]".to_owned());
    format!("{PREFIX}{json}")
}

/// The ranges held by a task's cursor: `None` when the cursor is not range state (a provider
/// cursor of a sequential run), `Some(Err)` when it is but cannot be read.
pub(super) fn decode(cursor: &str) -> Option<Result<Vec<Range>, serde_json::Error>> {
    let json = cursor.strip_prefix(PREFIX)?;
    Some(serde_json::from_str(json))
}

/// The middle at which to split what remains of `range` after a page whose oldest object was
/// created at `oldest`, when it is worth splitting: `gte < mid <= oldest`.
pub(super) fn split_point(range: &Range, oldest: i64) -> Option<i64> {
    let span = oldest.min(range.lt - 1) - range.gte;
    (span >= MIN_SPLIT_SECS).then(|| range.gte + (span + 1) / 2)
}

/// The ranges of a run and when it started; one lock serializes the task's commits.
struct State {
    ranges: Vec<Range>,
    /// No fetch of the run is older than this: what the sweep compares row writes to.
    started: DateTime<Utc>,
    /// Ranges walked at once, for the app's request budget.
    max_walkers: usize,
}

impl State {
    fn undone(&self) -> usize {
        self.ranges.iter().filter(|r| !r.done).count()
    }
}

/// How one walker ended.
enum Walked {
    /// Its range is done.
    Done,
    /// It stopped between pages (stopping, or another walker failed).
    Stopped,
    /// It committed the run's last page: the task is over.
    Finished(TaskOutcome),
}

/// Why a walker failed.
enum Failure {
    Call(CallError),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// What the walkers share.
struct Shared<'s> {
    /// Held only for moments, never across an await: the driver reads it while walkers run.
    state: std::sync::Mutex<State>,
    /// Serializes the task's commits: held from a range's state change until its page is
    /// committed, so the state written with each page is the state after every earlier page.
    commits: tokio::sync::Mutex<()>,
    /// Fires when a split adds a range for an idle walker.
    added: Notify,
    /// Walkers stop at their next page boundary (the daemon is stopping, or a walker failed).
    stop: &'s CancellationToken,
}

impl Run<'_> {
    /// Walks a full listing of a splittable resource as `created` ranges, resuming the ranges
    /// held in `resume` (a cursor written by an earlier run of the task).
    pub(super) async fn ranged_listing(
        &self,
        resume: Option<Vec<Range>>,
    ) -> Result<TaskOutcome, StoreError> {
        let now = Utc::now();
        let ranges = resume.unwrap_or_else(|| {
            vec![Range {
                gte: self.app.sync_from.map_or(0, |t| t.timestamp()),
                lt: now.timestamp() + 1,
                after: None,
                done: false,
            }]
        });
        let stop = self.cancel.child_token();
        let max_walkers = walkers_for(self.app.requests_per_second);
        let shared = Shared {
            state: std::sync::Mutex::new(State {
                ranges,
                started: self.task.run_started_at.unwrap_or(now),
                max_walkers,
            }),
            commits: tokio::sync::Mutex::new(()),
            added: Notify::new(),
            stop: &stop,
        };
        let mut walkers = FuturesUnordered::new();
        let mut walking: Vec<usize> = Vec::new();
        let mut failure: Option<Failure> = None;
        loop {
            if failure.is_none() && !stop.is_cancelled() && !self.lost.is_cancelled() {
                let idle: Vec<usize> = {
                    let state = lock(&shared.state);
                    (0..state.ranges.len())
                        .filter(|i| !state.ranges[*i].done && !walking.contains(i))
                        .take(max_walkers.saturating_sub(walking.len()))
                        .collect()
                };
                for i in idle {
                    walking.push(i);
                    let shared = &shared;
                    walkers.push(async move { (i, self.walk(i, shared).await) });
                }
            }
            if walkers.is_empty() {
                break;
            }
            tokio::select! {
                Some((i, walked)) = walkers.next() => {
                    walking.retain(|&j| j != i);
                    match walked {
                        Ok(Walked::Done) | Ok(Walked::Stopped) => {}
                        Ok(Walked::Finished(outcome)) => return Ok(outcome),
                        Err(e) => {
                            failure.get_or_insert(e);
                            stop.cancel();
                        }
                    }
                }
                () = shared.added.notified() => {}
            }
        }
        match failure {
            Some(Failure::Store(e)) => Err(e),
            Some(Failure::Call(CallError::Provider(ConnectorError::FilterRefused { message }))) => {
                tracing::warn!(%message, "the list refuses the created filter: one unfiltered pass");
                let walk = Walk {
                    from: self.app.sync_from,
                    full: true,
                };
                self.sequential(None, walk).await
            }
            Some(Failure::Call(e)) => self.provider_failed(e).await,
            None if self.lost.is_cancelled() => Err(StoreError::LostLease),
            None if self.cancel.is_cancelled() => {
                let client = self.ctx.pool.get().await?;
                jobs::release_task(&**client, self.task, 0.0, None, false).await?;
                Ok(TaskOutcome::Released)
            }
            // Not reached: the walker that ends the last range finishes the task.
            None => Err(StoreError::LostLease),
        }
    }

    /// Fetches one page of a range, through the circuit breaker and in-place retries.
    async fn fetch_range(
        &self,
        options: ListOptions,
        after: Option<String>,
        stop: &CancellationToken,
    ) -> Result<(Page, DateTime<Utc>, PageSlot), Failure> {
        let slot = self.page_slot().await;
        let fetched_at = Utc::now();
        let options = ListOptions {
            account: self.connected(),
            ..options
        };
        let call = || {
            self.connector
                .list_page(&self.task.resource_type, after.as_deref(), &options)
        };
        let page = with_retries(self.ctx, &self.task.app_key, stop, call).await;
        page.map(|p| (p, fetched_at, slot)).map_err(Failure::Call)
    }

    /// Walks range `i` page by page until it is done, the run stops, or a call fails. The next
    /// page is fetched while this one commits.
    async fn walk(&self, i: usize, shared: &Shared<'_>) -> Result<Walked, Failure> {
        let (options, after) = {
            let state = lock(&shared.state);
            let range = &state.ranges[i];
            (range.options(), range.after.clone())
        };
        let mut next = self.fetch_range(options, after, shared.stop).await;
        loop {
            if self.lost.is_cancelled() {
                return Err(Failure::Store(StoreError::LostLease));
            }
            if shared.stop.is_cancelled() {
                return Ok(Walked::Stopped);
            }
            let (page, fetched_at, slot) = next?;
            // The rows go in side by side with other walkers' pages; only the commits that move
            // the cursor past them take turns.
            let refused = {
                let left_out = super::left_out(&page);
                let rows = PageWrite {
                    left_out: &left_out,
                    ..self.page_write(&page.records, 0, None, fetched_at, 0)
                };
                let client = self.ctx.pool.get().await.map_err(StoreError::from)?;
                let refused = entities::write_page_rows(&client, &rows).await?;
                self.written(page.records.len() + left_out.len(), &refused);
                refused.len() - left_out.len()
            };
            let turn = shared.commits.lock().await;
            let (range, all_done, cursor, started) = {
                let mut state = lock(&shared.state);
                self.advance(&mut state, i, &page, shared);
                let all_done = state.undone() == 0;
                (
                    state.ranges[i].clone(),
                    all_done,
                    encode(&state.ranges),
                    state.started,
                )
            };
            let next_cursor = (!all_done).then_some(cursor.as_str());
            let write = self.page_write(
                &[],
                page.records.len() - refused,
                next_cursor,
                fetched_at,
                page.requests,
            );
            // The rows are in: the page is not held while the next one waits for the budget.
            drop(page);
            drop(slot);
            if all_done {
                let events_from = started - chrono::Duration::seconds(EVENTS_SETTLE_SECS);
                let outcome = self.finish(&write, true, started, events_from).await?;
                return Ok(Walked::Finished(outcome));
            }
            // Our turn ends when the page is committed, not when the next page is fetched.
            let commit = async {
                let client = self.ctx.pool.get().await?;
                entities::commit_page(&client, &write).await?;
                drop(turn);
                Ok::<_, StoreError>(())
            };
            if range.done {
                commit.await?;
                return Ok(Walked::Done);
            }
            let fetch = self.fetch_range(range.options(), range.after.clone(), shared.stop);
            let (committed, fetched) = tokio::join!(commit, fetch);
            committed?;
            next = fetched;
        }
    }

    /// Moves range `i` past `page`, and splits what remains of it when a walker is idle.
    fn advance(&self, state: &mut State, i: usize, page: &Page, shared: &Shared<'_>) {
        let first = state.ranges[i].after.is_none();
        let range = &mut state.ranges[i];
        range.after = page.next_cursor.clone();
        range.done = page.next_cursor.is_none();
        if range.done {
            return;
        }
        let own = self.resource.collection_key;
        let oldest = page
            .records
            .iter()
            .filter(|r| r.collection_key == own)
            .map(|r| r.created)
            .min()
            .flatten();
        let room = state.ranges.len() < MAX_RANGES && state.undone() < state.max_walkers;
        let (Some(oldest), true) = (oldest, room) else {
            return;
        };
        let range = &mut state.ranges[i];
        let Some(mid) = split_point(range, oldest) else {
            return;
        };
        let older = Range {
            gte: range.gte,
            lt: mid,
            after: None,
            done: false,
        };
        range.gte = mid;
        tracing::debug!(first, gte = older.gte, mid, lt = range.lt, "split a range");
        state.ranges.push(older);
        shared.added.notify_one();
    }
}

/// Ranges walked at once for an app's request budget: enough walkers, each with about one request
/// in flight, to use the whole budget when the provider takes up to 250 ms a request.
pub(super) fn walkers_for(requests_per_second: Option<f64>) -> usize {
    match requests_per_second {
        Some(rps) => ((rps / REQUESTS_PER_WALKER).ceil() as usize).clamp(MIN_WALKERS, MAX_WALKERS),
        None => MIN_WALKERS,
    }
}

/// The state, even if a walker panicked while holding it (its updates are whole or absent).
fn lock(state: &std::sync::Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(gte: i64, lt: i64) -> Range {
        Range {
            gte,
            lt,
            after: None,
            done: false,
        }
    }

    #[test]
    fn state_round_trips_through_the_cursor() {
        let ranges = vec![
            Range {
                after: Some("cus_9".into()),
                ..range(50, 101)
            },
            Range {
                done: true,
                ..range(0, 50)
            },
        ];
        let cursor = encode(&ranges);
        assert!(cursor.starts_with("ranges:[{\"gte\":50,\"lt\":101,\"after\":\"cus_9\""));
        assert_eq!(decode(&cursor).expect("ranges").expect("json"), ranges);
        assert!(decode("cus_123").is_none());
        assert!(decode("ranges:{").expect("ranges").is_err());
    }

    #[test]
    fn walkers_follow_the_request_budget() {
        assert_eq!(walkers_for(None), 8);
        assert_eq!(walkers_for(Some(25.0)), 8, "Stripe test keys");
        assert_eq!(walkers_for(Some(100.0)), 25, "Stripe live keys");
        assert_eq!(walkers_for(Some(1000.0)), 32);
    }

    #[test]
    fn split_point_keeps_the_oldest_second_seen_in_the_walker_range() {
        // Seen so far: created >= 10. The new range [0, mid) must hold nothing seen: mid <= 10.
        let r = range(0, 100);
        let mid = split_point(&r, 10).expect("split");
        assert!(0 < mid && mid <= 10, "{mid}");
        // Two seconds left ([4, 6]): split between them.
        assert_eq!(split_point(&range(4, 100), 6), Some(5));
        // One second left (or none): nothing to split.
        assert_eq!(split_point(&range(4, 100), 5), None);
        assert_eq!(split_point(&range(4, 100), 4), None);
        // An oldest object outside the range (a provider ignoring the bound) never widens it.
        assert_eq!(split_point(&range(0, 3), 50), Some(1));
    }
}
