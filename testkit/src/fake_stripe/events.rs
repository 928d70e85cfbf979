//! The fake's event log: the Stripe events its mutations record, and `GET /v1/events`.
//!
//! Invariants:
//! - Every mutation made through [`FakeStripe`](super::FakeStripe) records its events while it
//!   still holds the store's lock, so the log's recording order is the order of the changes.
//! - An event's type is one of its resource's `events` in the connector's table: see
//!   [`created_type`], [`updated_type`], [`deleted_type`] and [`ended_type`]. A resource without
//!   events (balance transactions) records none. A child's change is its parent's update.
//! - An event's `data.object` is the object as a retrieve served it right after the change (a
//!   parent with its embedded children); the JSON is serialised once, when recorded.
//! - The log is ordered like the store's tables: `created` descending, ties by recording order
//!   descending. Events older than [`RETENTION_SECS`] by the fake's clock are kept (cursors and the
//!   test accessors still see them) but neither listed nor retrieved, as on Stripe.
//! - Events are stamped with the fake's clock (see [`super::clock`]): changes in one second share
//!   a `created`, and only recording order tells them apart.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::error::ApiError;
use super::kinds::Kind;
use super::list::{pick, Page, Row};
use super::query::{non_empty, ListParams};
use super::store::{to_bytes, SortKey, Store};
use super::synth::stripe_id;
use supasaasy_stripe::resources::StripeResource;

/// The API version recorded events are rendered at.
pub const API_VERSION: &str = "2025-08-27.basil";
/// How long Stripe keeps events: thirty days.
pub const RETENTION_SECS: i64 = 30 * 86_400;
/// Stripe refuses more `types[]` than this.
const MAX_TYPES: usize = 20;

/// Numbers event ids across every fake of the process, so two fakes never share an id.
static NEXT_EVENT: AtomicU64 = AtomicU64::new(1);

/// A fresh `evt_` id of Stripe's shape.
fn next_event_id() -> String {
    stripe_id(
        "evt_",
        24,
        0xe7e7,
        NEXT_EVENT.fetch_add(1, Ordering::Relaxed),
    )
}

/// The objects a mutation may change, whose events it records: objects of rows of the table,
/// never children (a child's change is an event of its parent).
#[derive(Debug, Default)]
pub(crate) struct Subjects(Vec<(usize, String)>);

impl Subjects {
    /// Adds an object, or for a child the parent holding it now (if any): Stripe reports a
    /// subscription item's change as `customer.subscription.updated`.
    pub fn touch(mut self, store: &Store, kind: Kind, id: &str) -> Self {
        match kind {
            Kind::Child(row) => {
                if let Some(owner) = store.children(row).owner_of(id) {
                    let owner = owner.to_owned();
                    self.add(row, owner);
                }
            }
            Kind::Row(row) => self.add(row, id.to_owned()),
        }
        self
    }

    /// Adds the parent a child names (its new owner), for a child kind.
    pub fn parent(mut self, kind: Kind, id: Option<&str>) -> Self {
        if let (Kind::Child(row), Some(id)) = (kind, id) {
            self.add(row, id.to_owned());
        }
        self
    }

    fn add(&mut self, row: usize, id: String) {
        if !self.0.iter().any(|(r, i)| *r == row && *i == id) {
            self.0.push((row, id));
        }
    }

    /// The subjects as a retrieve serves them now (`None` where absent).
    pub fn snapshot(self, store: &Store) -> Before {
        Before(
            self.0
                .into_iter()
                .map(|(row, id)| {
                    let object = store.get(Kind::Row(row), &id);
                    (row, id, object)
                })
                .collect(),
        )
    }
}

/// The subjects of a mutation as they were before it.
#[derive(Debug)]
pub(crate) struct Before(Vec<(usize, String, Option<Value>)>);

/// One recorded event.
#[derive(Debug)]
struct Recorded {
    /// The event's `type`, for the type filters (a raw event may lack one).
    kind: Option<Box<str>>,
    /// The event as served.
    json: Bytes,
}

/// Every event one account of the fake has recorded.
#[derive(Default)]
pub(crate) struct EventLog {
    /// The connected account whose log this is: its events carry `"account": id`. `None` for
    /// the platform's.
    account: Option<String>,
    /// Newest first, like a store table.
    rows: BTreeMap<SortKey, Recorded>,
    /// Event id to its place, for cursors and retrieves.
    keys: HashMap<String, SortKey>,
    /// Recording order, which breaks ties on `created`.
    next_seq: u64,
    /// The most recently recorded event.
    last: Option<SortKey>,
}

impl std::fmt::Debug for EventLog {
    /// The count only: printing the fake should not print every event.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("events", &self.rows.len())
            .finish()
    }
}

/// A new event of type `kind` with `data.object` (and `data.previous_attributes` when given),
/// stamped `now`; `account` names the connected account it happened in.
pub(crate) fn new_event(
    kind: &str,
    object: Value,
    previous: Option<Map<String, Value>>,
    account: Option<&str>,
    now: i64,
) -> Value {
    let mut data = Map::new();
    data.insert("object".into(), object);
    if let Some(previous) = previous {
        data.insert("previous_attributes".into(), Value::Object(previous));
    }
    let mut event = json!({
        "id": next_event_id(),
        "object": "event",
        "api_version": API_VERSION,
        "created": now,
        "type": kind,
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "data": data,
    });
    if let (Some(account), Some(map)) = (account, event.as_object_mut()) {
        map.insert("account".into(), Value::from(account));
    }
    event
}

impl EventLog {
    /// The log of a connected account, whose events carry `"account": id`.
    pub fn of_account(id: &str) -> Self {
        EventLog {
            account: Some(id.to_owned()),
            ..EventLog::default()
        }
    }

    /// Records the events of a mutation: for each subject, what became of it since `before`.
    pub fn record_since(&mut self, before: Before, store: &Store, now: i64) {
        for (row, id, old) in before.0 {
            let new = store.get(Kind::Row(row), &id);
            if let Some(Change {
                kind,
                object,
                previous,
            }) = classify(Kind::Row(row), old, new)
            {
                let event = new_event(kind, object, previous, self.account.as_deref(), now);
                self.push(event, now);
            }
        }
    }

    /// Adds a raw event as given, with an `id`, a `created` (from `now`) and, in a connected
    /// account's log, an `account` if it has none; returns its id.
    ///
    /// # Panics
    ///
    /// When the event is not an object, its `id` is not a string or is already recorded, or its
    /// `created` is not an integer.
    pub fn push(&mut self, event: Value, now: i64) -> String {
        let Value::Object(mut map) = event else {
            panic!("an event must be a JSON object, not {event}");
        };
        let id = match map.get("id") {
            None => {
                let id = next_event_id();
                map.insert("id".into(), Value::from(id.as_str()));
                id
            }
            Some(Value::String(id)) => id.clone(),
            Some(other) => panic!("an event's \"id\" must be a string, not {other}"),
        };
        assert!(
            !self.keys.contains_key(&id),
            "event {id} is already recorded"
        );
        if let Some(account) = &self.account {
            map.entry("account")
                .or_insert_with(|| Value::from(account.as_str()));
        }
        let created = map.entry("created").or_insert_with(|| Value::from(now));
        let created = created
            .as_i64()
            .unwrap_or_else(|| panic!("event {id} needs an integer \"created\""));
        let kind = map.get("type").and_then(Value::as_str).map(Box::from);
        let key = (Reverse(created), Reverse(self.next_seq));
        self.next_seq += 1;
        let json = to_bytes(&map);
        self.rows.insert(key, Recorded { kind, json });
        self.keys.insert(id.clone(), key);
        self.last = Some(key);
        id
    }

    /// Every event, oldest first (by `created`, then recording order): the reverse of an
    /// unfiltered list, retention ignored.
    pub fn all(&self) -> Vec<Value> {
        self.rows.values().rev().filter_map(parse).collect()
    }

    /// One event by id, retention ignored.
    pub fn get(&self, id: &str) -> Option<Value> {
        self.keys
            .get(id)
            .and_then(|k| self.rows.get(k))
            .and_then(parse)
    }

    /// The event recorded last (not necessarily the newest by `created` if the clock went back).
    pub fn last(&self) -> Option<Value> {
        self.last.and_then(|k| self.rows.get(&k)).and_then(parse)
    }

    /// `GET /v1/events/{id}`.
    ///
    /// # Errors
    ///
    /// 404 `resource_missing` for an unknown event or one past retention.
    pub fn retrieve(&self, id: &str, now: i64) -> Result<Row, ApiError> {
        self.keys
            .get(id)
            .filter(|(Reverse(created), _)| *created >= now - RETENTION_SECS)
            .and_then(|k| self.rows.get(k))
            .map(|e| Row::plain(e.json.clone()))
            .ok_or_else(|| ApiError::no_such(404, "event", id, "id"))
    }

    /// `GET /v1/events`: one page, newest first, within retention.
    ///
    /// # Errors
    ///
    /// 400 `resource_missing` when a cursor names an event never recorded.
    pub fn list(&self, params: EventParams, now: i64) -> Result<Page, ApiError> {
        let EventParams { mut page, types } = params;
        let floor = now - RETENTION_SECS;
        page.created_min = Some(page.created_min.map_or(floor, |min| min.max(floor)));
        let cursor = |param: &str, id: &str| {
            self.keys
                .get(id)
                .copied()
                .ok_or_else(|| ApiError::no_such(400, "event", id, param))
        };
        let admits = |e: &Recorded| types.admits(e.kind.as_deref());
        let (picked, has_more) = pick(&self.rows, &page, cursor, admits)?;
        Ok(Page {
            rows: picked
                .into_iter()
                .map(|e| Row::plain(e.json.clone()))
                .collect(),
            has_more,
        })
    }
}

fn parse(e: &Recorded) -> Option<Value> {
    serde_json::from_slice(&e.json).ok()
}

/// The type of an event saying an object of `row` was created: the row's type ending in
/// `.created`, else its first type; `None` when the resource has no events.
pub(crate) fn created_type(row: &StripeResource) -> Option<&'static str> {
    (row.events.iter().find(|t| t.ends_with(".created")))
        .or(row.events.first())
        .copied()
}

/// The type of an event saying an object of `row` changed: the row's first type ending in
/// `.updated`, else its first type that does not mean gone.
pub(crate) fn updated_type(row: &StripeResource) -> Option<&'static str> {
    (row.events.iter().find(|t| t.ends_with(".updated")))
        .or_else(|| row.events.iter().find(|t| !row.deleted_by.contains(t)))
        .copied()
}

/// The type of an event saying an object of `row` is gone: its first `deleted_by` type; `None`
/// when Stripe never deletes one (a subscription ends instead).
pub(crate) fn deleted_type(row: &StripeResource) -> Option<&'static str> {
    row.deleted_by.first().copied()
}

/// The type of an event saying an object of `row` ended (its `status` became `canceled`): a
/// type ending in `.deleted` that does not mean gone, as `customer.subscription.deleted`.
pub(crate) fn ended_type(row: &StripeResource) -> Option<&'static str> {
    (row.events.iter())
        .find(|t| t.ends_with(".deleted") && !row.deleted_by.contains(t))
        .copied()
}

/// What a change to one object amounts to, as an event.
struct Change {
    /// The event's type.
    kind: &'static str,
    /// `data.object`.
    object: Value,
    /// `data.previous_attributes`, for updates.
    previous: Option<Map<String, Value>>,
}

impl Change {
    fn new(kind: &'static str, object: Value, previous: Option<Map<String, Value>>) -> Self {
        Change {
            kind,
            object,
            previous,
        }
    }
}

/// The event a change from `before` to `after` of an object of `kind` records, if any.
fn classify(kind: Kind, before: Option<Value>, after: Option<Value>) -> Option<Change> {
    let row = kind.row();
    let status = |o: &Value| o.get("status").and_then(Value::as_str).map(str::to_owned);
    match (before, after) {
        (None, None) => None,
        (None, Some(after)) => Some(Change::new(created_type(row)?, after, None)),
        (Some(mut last), None) => {
            let deleted = deleted_type(row)?;
            if let (true, Some(map)) = (kind.stub_when_deleted(), last.as_object_mut()) {
                map.insert("deleted".into(), Value::Bool(true));
            }
            Some(Change::new(deleted, last, None))
        }
        (Some(before), Some(after)) => {
            let canceled = Some("canceled".to_owned());
            if let Some(ended) = ended_type(row) {
                if status(&after) == canceled && status(&before) != canceled {
                    // `customer.subscription.deleted` means ended: the object stays.
                    return Some(Change::new(ended, after, None));
                }
            }
            let previous = previous_attributes(&before, &after);
            Some(Change::new(updated_type(row)?, after, Some(previous)))
        }
    }
}

/// The old values of the top-level keys that changed (`null` for keys that were absent).
pub(crate) fn previous_attributes(before: &Value, after: &Value) -> Map<String, Value> {
    let empty = Map::new();
    let old = before.as_object().unwrap_or(&empty);
    let new = after.as_object().unwrap_or(&empty);
    old.keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)))
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| (k.clone(), old.get(k).cloned().unwrap_or(Value::Null)))
        .collect()
}

/// Which event types a list asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum TypeFilter {
    /// No type filter.
    #[default]
    Any,
    /// `type=`: an exact type, or a pattern where `*` matches any run of characters.
    Pattern(String),
    /// `types[]=`: any of these exact types.
    OneOf(Vec<String>),
}

impl TypeFilter {
    /// Whether an event of this type is listed.
    pub fn admits(&self, kind: Option<&str>) -> bool {
        match self {
            TypeFilter::Any => true,
            TypeFilter::Pattern(p) => kind.is_some_and(|k| glob(p.as_bytes(), k.as_bytes())),
            TypeFilter::OneOf(types) => kind.is_some_and(|k| types.iter().any(|t| t == k)),
        }
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of bytes.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and where in `text` its match currently ends.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// The parameters of one `GET /v1/events`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct EventParams {
    /// Page size, cursors and the `created` window.
    pub page: ListParams,
    /// `type` or `types[]`.
    pub types: TypeFilter,
}

impl EventParams {
    /// Validates the decoded query pairs of `GET /v1/events`.
    ///
    /// # Errors
    ///
    /// A 400 [`ApiError`] naming the first unknown or invalid parameter, for `type` and `types[]`
    /// together, or for more than twenty `types[]`.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut page = ListParams::default();
        let mut pattern = None;
        let mut types = Vec::new();
        for (key, value) in pairs {
            match key.as_str() {
                "type" => pattern = non_empty(value),
                "types" => return Err(ApiError::invalid("types", "Invalid array")),
                k if is_types_key(k) => types.extend(non_empty(value)),
                k if page.common(k, value)? => {}
                other => return Err(ApiError::unknown_param(other)),
            }
        }
        page.check_cursors()?;
        let types = match (pattern, types.is_empty()) {
            (None, true) => TypeFilter::Any,
            (Some(p), true) => TypeFilter::Pattern(p),
            (None, false) if types.len() > MAX_TYPES => {
                return Err(ApiError::invalid(
                    "types",
                    format!("You may only specify up to {MAX_TYPES} types"),
                ))
            }
            (None, false) => TypeFilter::OneOf(types),
            (Some(_), false) => {
                return Err(ApiError::invalid(
                    "type",
                    "You may only specify one of these parameters: type, types.",
                ))
            }
        };
        Ok(EventParams { page, types })
    }
}

/// `types[]` or `types[3]`.
fn is_types_key(key: &str) -> bool {
    key.strip_prefix("types[")
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|index| index.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::super::query::parse_query;
    use super::*;

    #[test]
    fn patterns_match_like_stripes_wildcards() {
        let any = |p: &str, t: &str| glob(p.as_bytes(), t.as_bytes());
        assert!(any("customer.*", "customer.created"));
        assert!(any("customer.*", "customer.subscription.updated"));
        assert!(!any("customer.*", "price.created"));
        assert!(!any("customer.*", "customer"));
        assert!(any("*.created", "price.created"));
        assert!(any("customer.created", "customer.created"));
        assert!(!any("customer.created", "customer.created2"));
        assert!(any("*", ""));
        assert!(any("c*s*d", "customer.subscription.updated"));
    }

    #[test]
    fn event_types_come_from_the_table() {
        let row = |name: &str| Kind::named(name).row();
        let sub = row("subscription");
        assert_eq!(created_type(sub), Some("customer.subscription.created"));
        assert_eq!(updated_type(sub), Some("customer.subscription.updated"));
        assert_eq!(deleted_type(sub), None);
        assert_eq!(ended_type(sub), Some("customer.subscription.deleted"));
        let customer = row("customer");
        assert_eq!(deleted_type(customer), Some("customer.deleted"));
        assert_eq!(ended_type(customer), None);
        assert_eq!(created_type(row("charge")), Some("charge.captured"));
        assert_eq!(updated_type(row("charge")), Some("charge.updated"));
        let session = row("checkout_session");
        assert_eq!(
            created_type(session),
            Some("checkout.session.async_payment_failed")
        );
        assert_eq!(
            updated_type(session),
            Some("checkout.session.async_payment_failed")
        );
        let item = row("invoice_item");
        assert_eq!(created_type(item), Some("invoiceitem.created"));
        assert_eq!(updated_type(item), Some("invoiceitem.created"));
        assert_eq!(deleted_type(item), Some("invoiceitem.deleted"));
        assert_eq!(created_type(row("review")), Some("review.closed"));
        let txn = row("balance_transaction");
        assert_eq!((created_type(txn), updated_type(txn)), (None, None));
        assert_eq!(
            deleted_type(row("discount")),
            Some("customer.discount.deleted")
        );
    }

    #[test]
    fn previous_attributes_hold_old_values_of_changed_keys() {
        let before = json!({"id": "x", "a": 1, "b": {"c": 2}, "gone": true});
        let after = json!({"id": "x", "a": 1, "b": {"c": 3}, "new": "n"});
        let previous = previous_attributes(&before, &after);
        assert_eq!(
            Value::Object(previous),
            json!({"b": {"c": 2}, "gone": true, "new": null})
        );
    }

    #[test]
    fn parses_type_filters_and_refuses_what_stripe_refuses() {
        let parse = |q: &str| EventParams::parse(&parse_query(q));
        let p = parse("types%5B%5D=a&types%5B1%5D=b&limit=3").unwrap();
        assert_eq!(p.types, TypeFilter::OneOf(vec!["a".into(), "b".into()]));
        assert_eq!(p.page.limit, 3);
        assert_eq!(
            parse("type=customer.*").unwrap().types,
            TypeFilter::Pattern("customer.*".into())
        );
        assert_eq!(parse("type=a&types[]=b").unwrap_err().status, 400);
        let many: Vec<String> = (0..21).map(|i| format!("types[]=t{i}")).collect();
        let err = parse(&many.join("&")).unwrap_err();
        assert_eq!(err.message, "You may only specify up to 20 types");
        assert!(parse(&many[..20].join("&")).is_ok());
        assert_eq!(
            parse("status=all").unwrap_err().code,
            Some("parameter_unknown")
        );
        assert!(parse("starting_after=a&ending_before=b").is_err());
        assert_eq!(parse("created[gt]=5").unwrap().page.created_min, Some(6));
    }
}
