//! Applying provider events to the mirror: webhook deliveries and events-API entries take this one
//! path, whatever order they arrive in.
//!
//! An event's state is as of its `created` second. Per object, under the object's lock:
//! - no row, or a row older than that second: the event's state is written;
//! - a row at least a second newer: the event is stale and changes nothing;
//! - a row from the same second whose state differs: the order of the two cannot be known, so the
//!   object is fetched from the provider, which is the truth, and that state is written as of now,
//!   or as of the row's time when that is later (a provider clock ahead of the daemon's stamped
//!   it): the fetched state replaces the row whatever the clocks say (an object the provider
//!   cannot fetch, a Stripe discount, is ordered by the rule that a deletion is final: a tombstone
//!   of the same second stays, a deletion of it is written).
//!
//! A parent whose event does not carry all its children (a truncated item list) is fetched too.
//! Children that left their parent are tombstoned. The event id is recorded in the same
//! transaction, so a second delivery changes nothing, and a failure leaves nothing half-applied.
//!
//! Events are applied a batch at a time, in one transaction and a handful of statements whatever
//! the batch's size ([`apply_events`]): a page of the events API, or the webhooks that arrived
//! together ([`group`]). Within a batch each event sees the state the events before it left. An
//! event that needs an object from the provider writes nothing in that transaction: the object is
//! fetched once it has committed, with no transaction open, through the app's circuit breaker and
//! within a time limit, and the event is then decided again in a transaction of its own
//! ([`apply_taking_turns`]).

pub mod group;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use supasaasy_connector::{
    find_resource, Change, Connector, ConnectorError, Event, Record, Resource,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use uuid::Uuid;

use crate::ops::breaker::Breakers;
use crate::store::accounts;
use crate::store::changes::{self, ChangedRows, Departures, ObjectKey};
use crate::store::events::{self, SeenEvent};
use crate::store::skipped::{self, Origin, Refused};
use crate::store::StoreError;

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// At least one change was written.
    Applied,
    /// Every change was older than what the mirror holds.
    Stale,
    /// The event type is not mapped.
    Ignored,
    /// The event id was seen before.
    Duplicate,
    /// The database refused a value of the event's objects: they were left out and recorded in
    /// `supasaasy.skipped_entities`, and the event recorded as seen.
    Quarantined,
}

impl Action {
    /// The name answered to the provider and recorded.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Applied => "applied",
            Action::Stale => "stale",
            Action::Ignored => "ignored",
            Action::Duplicate => "duplicate",
            Action::Quarantined => "quarantined",
        }
    }
}

/// Why an event could not be applied; the provider should deliver it again later.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Fetching the object's true state failed.
    #[error("fetching the object from the provider: {0}")]
    Provider(#[from] ConnectorError),
    /// The batch the event was applied in failed as a whole, or the daemon is stopping.
    #[error("{0}")]
    Unavailable(String),
}

impl From<tokio_postgres::Error> for ApplyError {
    fn from(e: tokio_postgres::Error) -> Self {
        ApplyError::Store(e.into())
    }
}

/// Whose rows an event's changes are, and which account to ask when an object must be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The id of the account the app's key belongs to (`''` when unknown, or for a provider
    /// without accounts).
    pub own: &'a str,
    /// The connected account the event happened in (Stripe Connect); `None` for the app's own.
    pub connected: Option<&'a str>,
}

impl<'a> Scope<'a> {
    /// The app's own account.
    pub fn own(own: &'a str) -> Scope<'a> {
        Scope {
            own,
            connected: None,
        }
    }

    /// The account a change of `resource` is written in, and the account to fetch it from. The
    /// connected accounts themselves are the app's own rows, fetched by the app.
    fn of(&self, resource: Option<Resource>) -> (&'a str, Option<&'a str>) {
        match self.connected {
            Some(_) if resource.is_some_and(|r| r.connected_accounts) => (self.own, None),
            Some(account) => (account, Some(account)),
            None => (self.own, None),
        }
    }
}

/// One event to apply, with what applying it needs.
#[derive(Clone, Copy)]
pub struct Item<'a> {
    /// The app it was delivered to.
    pub app_key: &'a str,
    /// Whose rows its changes are.
    pub scope: Scope<'a>,
    /// The app's connector (its API version, and fetching an object's true state).
    pub connector: &'a dyn Connector,
    /// The event.
    pub event: &'a Event,
    /// `webhook` or `events_api`.
    pub source: &'a str,
    /// The job and task reading the events API, which count the objects it quarantines.
    pub run: Option<(Uuid, Uuid)>,
    /// The app's circuit breaker, which a fetch of an object's state goes through.
    pub breakers: Option<&'a Breakers>,
}

/// What one event of a batch came to.
pub type Outcome = Result<Action, ConnectorError>;

/// Applies `items` in one transaction and commits it; the events that need an object from the
/// provider are set aside, the object fetched with no transaction open, and then applied in a
/// transaction of their own.
///
/// # Errors
///
/// A database error: nothing of any event was written then.
pub async fn apply_in_transaction(
    pool: &Pool,
    items: &[Item<'_>],
) -> Result<Vec<Outcome>, StoreError> {
    let mut outcomes: Vec<Outcome> = items.iter().map(|_| Ok(Action::Duplicate)).collect();
    apply_taking_turns(pool, items, None, |i, outcome: &Outcome| {
        outcomes[i] = outcome.clone();
    })
    .await?;
    Ok(outcomes)
}

/// A webhook lane's turn at the database ([`group`]): held while the batch's transaction runs,
/// given up while the batch waits for the provider, so a slow provider holds up no other
/// delivery.
pub struct Turn {
    lanes: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Turn {
    /// A turn already granted.
    pub fn new(lanes: Arc<Semaphore>, permit: OwnedSemaphorePermit) -> Turn {
        Turn {
            lanes,
            permit: Some(permit),
        }
    }
}

/// [`apply_in_transaction`], giving up `turn` (when given) while objects are fetched, and
/// handing each event's outcome to `settled` (with its index in `items`) as soon as the
/// transaction that decided it has committed.
///
/// # Errors
///
/// A database error: the events not handed to `settled` yet wrote nothing.
pub async fn apply_taking_turns(
    pool: &Pool,
    items: &[Item<'_>],
    mut turn: Option<&mut Turn>,
    mut settled: impl FnMut(usize, &Outcome),
) -> Result<(), StoreError> {
    let mut fetches = Fetches::default();
    // The events still to apply, as indices into `items`.
    let mut pending: Vec<usize> = (0..items.len()).collect();
    for round in 1..=FETCH_ROUNDS {
        // What the last decisions asked of the provider is fetched with no transaction open:
        // a slow provider holds no lock and no connection, and no other app's deliveries.
        if !fetches.wanted.is_empty() {
            if let Some(turn) = turn.as_deref_mut() {
                turn.permit = None;
                fetches.fetch_wanted().await;
                let permit = turn.lanes.clone().acquire_owned().await;
                turn.permit = Some(permit.expect("the lanes are never closed"));
            } else {
                fetches.fetch_wanted().await;
            }
        }
        // The last round fetches what it still needs as it decides (objects that kept
        // changing between rounds): the old way, rarely taken.
        fetches.inline = round == FETCH_ROUNDS;
        let batch: Vec<Item> = pending.iter().map(|&i| items[i]).collect();
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        let decided = apply_events(&tx, &batch, &mut fetches).await?;
        // The events that need nothing from the provider are committed now; those waiting for
        // an object wrote nothing and are decided again, alone, once it is in hand.
        tx.commit().await?;
        let waiting: Vec<usize> = fetches.waiting.iter().map(|&j| pending[j]).collect();
        for (j, outcome) in decided.iter().enumerate() {
            if !fetches.waiting.contains(&j) {
                settled(pending[j], outcome);
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        pending = waiting;
    }
    Ok(())
}

/// Transactions a batch may take: the events whose decisions need objects from the provider
/// write nothing in the first (the others are committed); the second decides them with the
/// objects in hand; the last fetches inside the transaction whatever is still missing.
const FETCH_ROUNDS: usize = 3;

/// How long one fetch of an object's state may take, retries included.
const FETCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// An object to fetch: app, connected account to ask (if any), resource, id.
type FetchKey<'a> = (&'a str, Option<&'a str>, &'a str, &'a str);

/// An object's state as fetched (or why it could not be had), and when it was asked for.
type Fetched = (Result<Change, ConnectorError>, DateTime<Utc>);

/// Objects fetched from the provider for a batch, outside its transaction.
#[derive(Default)]
struct Fetches<'a> {
    /// Each object's state (or why it could not be had), and when it was asked for.
    got: HashMap<FetchKey<'a>, Fetched>,
    /// Objects a decision needs that are not in `got`, with the event asking.
    wanted: Vec<(FetchKey<'a>, Item<'a>)>,
    /// The events of the last transaction that wait for one of them (indices into its batch).
    waiting: Vec<usize>,
    /// Fetch what is not in `got` as the decision needs it (inside the transaction).
    inline: bool,
}

impl<'a> Fetches<'a> {
    /// Fetches every wanted object, a few at once, with no transaction open.
    async fn fetch_wanted(&mut self) {
        let mut wanted = std::mem::take(&mut self.wanted);
        wanted.sort_unstable_by_key(|(k, _)| *k);
        wanted.dedup_by_key(|(k, _)| *k);
        wanted.retain(|(k, _)| !self.got.contains_key(k));
        let mut wanted = wanted.into_iter();
        loop {
            let some: Vec<_> = wanted.by_ref().take(8).map(fetch_one).collect();
            if some.is_empty() {
                return;
            }
            self.got.extend(futures_util::future::join_all(some).await);
        }
    }
}

/// Fetches one wanted object, noting when it was asked for.
async fn fetch_one<'a>((key, item): (FetchKey<'a>, Item<'a>)) -> (FetchKey<'a>, Fetched) {
    let at = Utc::now();
    (key, (fetch_guarded(item, key).await, at))
}

/// Applies `items` as [`apply_in_transaction`] does; when the database refuses a value of the
/// batch, applies each alone, in order ([`apply_alone`]), so the event whose objects it refuses
/// is quarantined and the others are applied.
///
/// # Errors
///
/// A database error other than a refused value: nothing of the batch's events that was not yet
/// committed was written then.
pub async fn apply_guarded(pool: &Pool, items: &[Item<'_>]) -> Result<Vec<Outcome>, StoreError> {
    match apply_in_transaction(pool, items).await {
        Err(e) if e.is_refused_value() => {
            tracing::warn!(error = %e, events = items.len(), "the database refused a value of a batch of events: applying them one by one");
            let mut outcomes = Vec::with_capacity(items.len());
            for item in items {
                outcomes.push(apply_alone(pool, item).await?);
            }
            Ok(outcomes)
        }
        other => other,
    }
}

/// Applies one event in its own transaction. When the database refuses a value of its objects,
/// they are left out: the event is recorded as seen with the action `quarantined`, and each of
/// its objects recorded in `supasaasy.skipped_entities` with the database's reason, so the event
/// never blocks the deliveries after it and the next run fetches the objects again.
///
/// # Errors
///
/// A database error other than a refused value.
pub async fn apply_alone(pool: &Pool, item: &Item<'_>) -> Result<Outcome, StoreError> {
    match apply_in_transaction(pool, std::slice::from_ref(item)).await {
        Ok(mut outcomes) => Ok(outcomes.pop().unwrap_or(Ok(Action::Duplicate))),
        Err(e) if e.is_refused_value() => {
            tracing::warn!(app = item.app_key, event = %item.event.id, error = %e, "the database refused a value of an event's objects: quarantined");
            quarantine(pool, item, &e.to_string()).await
        }
        Err(e) => Err(e),
    }
}

/// Records an event as seen and quarantined, and its objects as skipped for `reason`.
async fn quarantine(pool: &Pool, item: &Item<'_>, reason: &str) -> Result<Outcome, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let seen = SeenEvent {
        app_key: item.app_key,
        event_id: &item.event.id,
        event_type: &item.event.event_type,
        created: item.event.created,
        source: item.source,
        action: Action::Quarantined.as_str(),
    };
    let fresh = events::record_seen(&tx, &[seen]).await?;
    if fresh.first() != Some(&true) {
        return Ok(Ok(Action::Duplicate));
    }
    // Per account the objects' rows would be in (a connected account's event: its own).
    let mut by_account: HashMap<&str, Vec<Refused>> = HashMap::new();
    for change in &item.event.changes {
        let (_, account, collection_key, id) = key(item, change);
        by_account
            .entry(account)
            .or_default()
            .push(Refused::new(collection_key, id, reason));
    }
    for (account_id, refused) in &by_account {
        let origin = Origin {
            app_key: item.app_key,
            account_id,
            source: item.source,
            job_id: item.run.map(|(job, _)| job),
            task_id: item.run.map(|(_, task)| task),
            event_id: Some(&item.event.id),
        };
        skipped::record(&tx, &origin, refused).await?;
    }
    tx.commit().await?;
    Ok(Ok(Action::Quarantined))
}

/// The state of one object as the batch goes: what the mirror held, then what the batch wrote.
struct Current<'a> {
    version: DateTime<Utc>,
    /// `None` for a row read without its payload (older than every change of the batch).
    payload: Option<Cow<'a, Value>>,
    deleted: bool,
}

/// A change the batch will write, as of `version`.
struct Staged<'a> {
    item: Item<'a>,
    change: Cow<'a, Change>,
    version: DateTime<Utc>,
}

/// Applies a batch of events in the caller's transaction, as if one after the other in the order
/// given, and answers one outcome per event:
/// - an event id seen before, or earlier in the batch, is a `Duplicate`;
/// - the ids are recorded, and every object the batch concerns is locked and read, in one
///   flight of three statements;
/// - each event is decided against the state before it (the mirror's, or an earlier event's of
///   the batch); an event whose fetch fails writes nothing and is not recorded (so its next
///   delivery applies it), and answers the provider's error without failing the others;
/// - the changes are written in as few statements as the batch allows (one, unless the batch
///   changes one object more than once), with the outcomes that differ from the one recorded.
///
/// # Errors
///
/// A database error: the transaction must be rolled back, and no outcome holds.
async fn apply_events<'a>(
    tx: &impl deadpool_postgres::GenericClient,
    items: &[Item<'a>],
    fetches: &mut Fetches<'a>,
) -> Result<Vec<Outcome>, StoreError> {
    let mut outcomes: Vec<Option<Outcome>> = items.iter().map(|_| None).collect();

    // Each event id once: a repeat within the batch gets the first delivery's outcome.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| (items[i].app_key, items[i].event.id.as_str()));
    let mut first: Vec<usize> = Vec::with_capacity(items.len());
    let mut repeat_of: Vec<(usize, usize)> = Vec::new();
    for i in order {
        match first.last() {
            Some(&f) if same_event(&items[f], &items[i]) => repeat_of.push((i, f)),
            _ => first.push(i),
        }
    }
    let seen: Vec<SeenEvent> = first
        .iter()
        .map(|&i| SeenEvent {
            app_key: items[i].app_key,
            event_id: &items[i].event.id,
            event_type: &items[i].event.event_type,
            created: items[i].event.created,
            source: items[i].source,
            action: if items[i].event.ignored {
                Action::Ignored.as_str()
            } else {
                Action::Applied.as_str()
            },
        })
        .collect();
    let mut keys: Vec<ObjectKey> = first
        .iter()
        .flat_map(|&i| {
            items[i]
                .event
                .changes
                .iter()
                .map(move |c| key(&items[i], c))
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    // A row's payload is compared with a change only when the row is as new as the change.
    let payloads_from = first
        .iter()
        .filter_map(|&i| DateTime::from_timestamp(items[i].event.created, 0))
        .min()
        .unwrap_or_else(Utc::now);
    // Sent together and run in this order: a repeat of an id another transaction is applying
    // waits for it, and the reads see every write committed before the locks were granted.
    let (fresh, _, states) = tokio::try_join!(
        biased;
        events::record_seen(tx, &seen),
        changes::lock_objects(tx, &keys),
        changes::read_states(tx, &keys, payloads_from),
    )?;
    let mut current: HashMap<ObjectKey, Current> = keys
        .iter()
        .zip(states)
        .filter_map(|(k, s)| {
            s.map(|s| {
                let state = Current {
                    version: s.source_updated_at,
                    payload: s.payload.map(Cow::Owned),
                    deleted: s.deleted,
                };
                (*k, state)
            })
        })
        .collect();

    let mut to_apply: Vec<usize> = Vec::new();
    for (&i, fresh) in first.iter().zip(fresh) {
        if !fresh {
            outcomes[i] = Some(Ok(Action::Duplicate));
        } else if items[i].event.ignored {
            outcomes[i] = Some(Ok(Action::Ignored));
        } else {
            to_apply.push(i);
        }
    }
    // In the order given, as the caller delivered them.
    to_apply.sort_unstable();
    let mut staged: Vec<Staged> = Vec::new();
    let mut stale = Vec::new();
    let mut failed = Vec::new();
    let mut deauthorized = Vec::new();
    fetches.waiting.clear();
    for &i in &to_apply {
        let event = items[i].event;
        let wanted_before = fetches.wanted.len();
        let outcome = match (&event.account, event.deauthorizes) {
            (Some(account), true) => {
                deauthorized.push((items[i].app_key, account.as_str(), event.created));
                Ok(Action::Applied)
            }
            _ => decide(items[i], &mut current, &mut staged, fetches).await,
        };
        let (app_key, id) = (items[i].app_key, items[i].event.id.as_str());
        if fetches.wanted.len() > wanted_before {
            // Waits for an object from the provider: not recorded now, applied in a later
            // transaction of its own round.
            failed.push((app_key, id));
            fetches.waiting.push(i);
            continue;
        }
        match &outcome {
            Ok(Action::Applied) => {}
            Ok(action) => stale.push((app_key, id, action.as_str())),
            Err(_) => failed.push((app_key, id)),
        }
        outcomes[i] = Some(outcome);
    }
    tokio::try_join!(
        biased;
        write_staged(tx, &staged),
        events::settle(tx, &stale, &failed),
        accounts::deauthorize(tx, &deauthorized),
    )?;

    for (i, f) in repeat_of {
        outcomes[i] = Some(match &outcomes[f] {
            Some(Err(e)) => Err(ConnectorError::Retryable {
                message: e.message().to_string(),
            }),
            _ => Ok(Action::Duplicate),
        });
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Ok(Action::Duplicate)))
        .collect())
}

fn same_event(a: &Item<'_>, b: &Item<'_>) -> bool {
    a.app_key == b.app_key && a.event.id == b.event.id
}

fn key<'a>(item: &Item<'a>, change: &'a Change) -> ObjectKey<'a> {
    let (account, _) = item
        .scope
        .of(find_resource(item.connector, change.resource));
    (
        item.app_key,
        account,
        change.record.collection_key,
        &change.record.external_id,
    )
}

/// Decides one event's changes against the state before it and stages what it writes. When a
/// fetch fails the event's staged changes and state are undone.
async fn decide<'a>(
    item: Item<'a>,
    current: &mut HashMap<ObjectKey<'a>, Current<'a>>,
    staged: &mut Vec<Staged<'a>>,
    fetches: &mut Fetches<'a>,
) -> Outcome {
    let version = DateTime::from_timestamp(item.event.created, 0).unwrap_or_else(Utc::now);
    // A second after the event's (none at the end of time: nothing is a second newer then).
    let second_after = version.checked_add_signed(Duration::seconds(1));
    let staged_before = staged.len();
    let mut undo: Vec<(ObjectKey, Option<Current>)> = Vec::new();
    for change in &item.event.changes {
        let k = key(&item, change);
        let resource = find_resource(item.connector, change.resource);
        let has_children = resource.is_some_and(|r| !r.child_collection_keys.is_empty());
        let fetchable = resource.is_none_or(|r| r.fetchable);
        let must_fetch = match current.get(&k) {
            Some(row) if second_after.is_some_and(|after| row.version >= after) => continue,
            Some(row) if row.version >= version => {
                if row.deleted == change.deleted
                    && row
                        .payload
                        .as_deref()
                        .is_some_and(|p| change.record.payload == *p)
                {
                    continue;
                }
                // An object the provider cannot fetch again is ordered by the rule that a
                // deletion is final: nothing from its second brings it back.
                if !fetchable && row.deleted {
                    continue;
                }
                fetchable
            }
            _ => fetchable && has_children && !change.deleted && change.children.is_none(),
        };
        let (change, version) = if must_fetch {
            let (_, account) = item.scope.of(resource);
            let id = change.record.external_id.as_str();
            let wanted: FetchKey = (item.app_key, account, change.resource, id);
            if !fetches.got.contains_key(&wanted) {
                if !fetches.inline {
                    // Decided again once the object is in hand (see `apply_in_transaction`).
                    fetches.wanted.push((wanted, item));
                    undo_event(staged, staged_before, current, undo);
                    return Ok(Action::Stale);
                }
                let at = Utc::now();
                let truth = fetch_guarded(item, wanted).await;
                fetches.got.insert(wanted, (truth, at));
            }
            match &fetches.got[&wanted] {
                // The provider's state now is newer than anything the mirror holds, whatever
                // the clocks say: a row stamped by a provider clock ahead of ours is matched,
                // not beaten.
                (Ok(truth), at) => {
                    let at = current.get(&k).map_or(*at, |row| row.version.max(*at));
                    (Cow::Owned(truth.clone()), at)
                }
                (Err(e), _) => {
                    undo_event(staged, staged_before, current, undo);
                    return Err(e.clone());
                }
            }
        } else {
            (Cow::Borrowed(change), version)
        };
        // A change older than the row changes nothing: it is not written, and an event whose
        // changes all lose is stale, not applied. So is a fetched state the mirror holds
        // already: the event's own state is not what the provider has.
        let holds = |row: &Current| {
            row.deleted == change.deleted
                && row
                    .payload
                    .as_deref()
                    .is_some_and(|p| change.record.payload == *p)
        };
        match current.get(&k) {
            Some(row) if row.version > version => continue,
            Some(row) if must_fetch && holds(row) => continue,
            _ => {}
        }
        let after = Current {
            version,
            payload: Some(match &change {
                Cow::Borrowed(c) => c.record.payload.value(),
                Cow::Owned(c) => Cow::Owned(c.record.payload.value().into_owned()),
            }),
            deleted: change.deleted,
        };
        undo.push((k, current.insert(k, after)));
        staged.push(Staged {
            item,
            change,
            version,
        });
    }
    Ok(if staged.len() > staged_before {
        Action::Applied
    } else {
        Action::Stale
    })
}

/// Takes back what one event staged and the states it changed.
fn undo_event<'a>(
    staged: &mut Vec<Staged<'a>>,
    staged_before: usize,
    current: &mut HashMap<ObjectKey<'a>, Current<'a>>,
    undo: Vec<(ObjectKey<'a>, Option<Current<'a>>)>,
) {
    staged.truncate(staged_before);
    for (k, before) in undo.into_iter().rev() {
        match before {
            Some(state) => current.insert(k, state),
            None => current.remove(&k),
        };
    }
}

/// Writes the staged changes, in order per object: a change goes in the first round after every
/// earlier change that touches one of its rows (one statement cannot change a row twice), so a
/// batch that changes each object once is one statement, plus one per parent whose children
/// left it.
async fn write_staged(
    tx: &impl deadpool_postgres::GenericClient,
    staged: &[Staged<'_>],
) -> Result<(), StoreError> {
    let mut round_of: Vec<usize> = Vec::with_capacity(staged.len());
    let mut last_round: HashMap<ObjectKey, usize> = HashMap::new();
    for s in staged {
        let rows = rows_of(s);
        let round = rows
            .iter()
            .filter_map(|r| last_round.get(&row_key(s, r)).map(|n| n + 1))
            .max()
            .unwrap_or(0);
        for r in rows {
            last_round.insert(row_key(s, r), round);
        }
        round_of.push(round);
    }
    let rounds = round_of.iter().max().map_or(0, |n| n + 1);
    for round in 0..rounds {
        let mut rows = ChangedRows::default();
        let mut departures = Vec::new();
        for (s, _) in staged.iter().zip(&round_of).filter(|(_, &r)| r == round) {
            let api_version = s.item.connector.api_version();
            for (n, record) in rows_of(s).into_iter().enumerate() {
                // The object may be a tombstone; its children are as the event lists them.
                let deleted = n == 0 && s.change.deleted;
                rows.push(
                    (s.item.app_key, s.account()),
                    api_version,
                    s.version,
                    record,
                    deleted,
                );
            }
            // Children the provider served only in part are written, and none is tombstoned.
            let complete = s.change.children.as_ref().filter(|c| c.complete);
            if let Some(children) = complete {
                departures.push(Departures {
                    app_key: s.item.app_key,
                    account_id: s.account(),
                    collection_key: children.collection_key,
                    parent_field: children.parent_field,
                    parent_id: &s.change.record.external_id,
                    keep: children
                        .records
                        .iter()
                        .map(|r| r.external_id.as_str())
                        .collect(),
                    version: s.version,
                });
            }
        }
        changes::write_rows(tx, &rows).await?;
        changes::tombstone_departed(tx, &departures).await?;
    }
    Ok(())
}

/// The rows a staged change writes: the object, then its children.
fn rows_of<'s>(s: &'s Staged<'_>) -> Vec<&'s Record> {
    let mut rows = vec![&s.change.record];
    if let Some(children) = &s.change.children {
        rows.extend(children.records.iter());
    }
    rows
}

fn row_key<'s>(s: &Staged<'s>, record: &'s Record) -> ObjectKey<'s> {
    (
        s.item.app_key,
        s.account(),
        record.collection_key,
        &record.external_id,
    )
}

impl<'a> Staged<'a> {
    /// The account the change's rows are written in.
    fn account(&self) -> &'a str {
        let resource = find_resource(self.item.connector, self.change.resource);
        self.item.scope.of(resource).0
    }
}

/// Fetches an object's state through the app's circuit breaker, retrying briefly, within
/// [`FETCH_LIMIT`]; a webhook answers an error (and the provider delivers again) when the provider
/// stays unavailable, is slow, or its circuit is open.
async fn fetch_guarded(
    item: Item<'_>,
    (app_key, account, resource, id): FetchKey<'_>,
) -> Result<Change, ConnectorError> {
    let fetch = async {
        let mut attempt = 0;
        loop {
            if let Some(breakers) = item.breakers {
                if breakers.check(app_key).is_err() {
                    return Err(ConnectorError::Retryable {
                        message: format!(
                            "the circuit of app {app_key} is open: {resource} {id} could not be fetched"
                        ),
                    });
                }
            }
            let result = item.connector.fetch_object(resource, id, account).await;
            if let Some(breakers) = item.breakers {
                match &result {
                    Err(e) if e.is_provider_failure() => breakers.failure(app_key, e.message()),
                    _ => breakers.success(app_key),
                }
            }
            match result {
                Err(e) if e.is_retryable() && attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                other => return other,
            }
        }
    };
    tokio::time::timeout(FETCH_LIMIT, fetch)
        .await
        .unwrap_or_else(|_| {
            Err(ConnectorError::Retryable {
                message: format!(
                    "fetching {resource} {id} of app {app_key} took longer than {} s",
                    FETCH_LIMIT.as_secs()
                ),
            })
        })
}
