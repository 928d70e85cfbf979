//! Stripe Connect: the platform and its connected accounts, which account a request's
//! `Stripe-Account` header reaches, and the account objects behind `GET /v1/account`,
//! `/v1/accounts` and `/v1/accounts/{id}`.
//!
//! Invariants:
//! - A request without `Stripe-Account`, or naming the platform's own id, is the platform's; one
//!   naming a connected account is that account's; any other is refused with 403
//!   `account_invalid`, as Stripe refuses an account whose platform access was revoked. Finding
//!   the account is one hash lookup, however many accounts there are.
//! - `/v1/accounts` lists the connected accounts newest first by their account object's `created`
//!   (ties by connection order, newest first), like a store table. Accounts given to
//!   [`StripeData`](super::StripeData) are created an hour apart before the fake started; one
//!   connected while serving is created at the fake's clock, or a second after the newest account
//!   when that is later, so `created` times stay distinct.
//! - A disconnected account leaves the list and answers 403, but its id stays a cursor (as a
//!   deleted object's does), its handle keeps working, and connecting it again keeps its account
//!   object.
//! - Only the platform lists or retrieves connected accounts: from a connected account the fake
//!   answers 403 with the message Stripe gives a connected account's key, "You cannot access the
//!   connected accounts of your Platform's connected accounts."

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::account::Account;
use super::data::fixture;
use super::error::ApiError;
use super::list::{pick, Page, Row};
use super::query::ListParams;
use super::store::{to_bytes, SortKey, Store};

/// How far apart the accounts of the initial data were created.
const INITIAL_SPACING: i64 = 3_600;

/// One account the platform ever connected.
#[derive(Debug)]
struct Entry {
    /// Its objects and events.
    account: Arc<Account>,
    /// Its account object, as `/v1/accounts/{id}` serves it.
    object: Value,
    /// Its place in `/v1/accounts` (kept once disconnected, for cursors).
    key: SortKey,
    /// Whether the platform reaches it now.
    connected: bool,
}

/// The platform and every account it connected.
#[derive(Debug)]
pub(crate) struct Accounts {
    /// The platform's objects and events.
    platform: Arc<Account>,
    /// The platform's account object, `GET /v1/account` without `Stripe-Account`.
    platform_object: Value,
    /// Every account ever connected, by id, connected now or not.
    entries: HashMap<String, Entry>,
    /// The connected accounts' ids, newest first: `/v1/accounts`.
    listed: BTreeMap<SortKey, String>,
    /// Connection order, which breaks ties on `created`.
    next_seq: u64,
    /// The newest `created` given so far, so the next is later.
    newest: i64,
}

/// The account fixture as the account `id`, created at `created` when given.
fn account_object(id: &str, created: Option<i64>) -> Value {
    let mut object = fixture("account");
    if let Some(map) = object.as_object_mut() {
        map.insert("id".into(), Value::from(id));
        if let Some(created) = created {
            map.insert("created".into(), Value::from(created));
        }
    }
    let url = format!("/v1/accounts/{id}/external_accounts");
    if let Some(list) = object
        .get_mut("external_accounts")
        .and_then(Value::as_object_mut)
    {
        list.insert("url".into(), Value::from(url));
    }
    object
}

/// Applies `f` to the account object of `id`; returns it before and after.
///
/// # Panics
///
/// When `f` changes the `id`.
fn edit(object: &mut Value, id: &str, f: impl FnOnce(&mut Value)) -> (Value, Value) {
    let before = object.clone();
    f(object);
    assert_eq!(
        object.get("id").and_then(Value::as_str),
        Some(id),
        "an account's id cannot change"
    );
    (before, object.clone())
}

fn created_of(object: &Value) -> i64 {
    object.get("created").and_then(Value::as_i64).unwrap_or(0)
}

impl Accounts {
    /// The platform `platform_id` with its objects, and `connected` (oldest first) connected
    /// to it, created an hour apart up to an hour before `now`.
    pub fn new(platform_id: &str, store: Store, connected: Vec<(String, Store)>, now: i64) -> Self {
        let mut accounts = Accounts {
            platform: Arc::new(Account::platform(platform_id, store)),
            platform_object: account_object(platform_id, None),
            entries: HashMap::with_capacity(connected.len()),
            listed: BTreeMap::new(),
            next_seq: 0,
            newest: i64::MIN,
        };
        let n = connected.len() as i64;
        for (i, (id, store)) in connected.into_iter().enumerate() {
            let created = now - (n - i as i64) * INITIAL_SPACING;
            accounts.connect(&id, store, created);
        }
        accounts
    }

    /// The platform.
    pub fn platform(&self) -> &Arc<Account> {
        &self.platform
    }

    /// The account a request naming `id` in `Stripe-Account` reaches: the platform for its own
    /// id, a connected account, or `None`.
    pub fn reach(&self, id: &str) -> Option<&Arc<Account>> {
        if id == self.platform.id {
            return Some(&self.platform);
        }
        self.entries
            .get(id)
            .filter(|e| e.connected)
            .map(|e| &e.account)
    }

    /// The platform or any account ever connected, connected now or not.
    pub fn known(&self, id: &str) -> Option<&Arc<Account>> {
        if id == self.platform.id {
            return Some(&self.platform);
        }
        self.entries.get(id).map(|e| &e.account)
    }

    /// Connects `id` with its objects, created at `now` or a second after the newest account.
    /// An account connected before keeps its account object and place.
    ///
    /// # Panics
    ///
    /// When `id` is the platform's or an account connected now.
    pub fn connect(&mut self, id: &str, store: Store, now: i64) {
        assert!(id != self.platform.id, "{id} is the platform itself");
        let account = Arc::new(Account::connected(id, store));
        if let Some(entry) = self.entries.get_mut(id) {
            assert!(!entry.connected, "{id} is already connected");
            entry.account = account;
            entry.connected = true;
            self.listed.insert(entry.key, id.to_owned());
            return;
        }
        let created = now.max(self.newest.saturating_add(1));
        self.newest = created;
        let key = (Reverse(created), Reverse(self.next_seq));
        self.next_seq += 1;
        let entry = Entry {
            account,
            object: account_object(id, Some(created)),
            key,
            connected: true,
        };
        self.entries.insert(id.to_owned(), entry);
        self.listed.insert(key, id.to_owned());
    }

    /// Disconnects `id`; returns whether it was connected.
    pub fn disconnect(&mut self, id: &str) -> bool {
        match self.entries.get_mut(id) {
            Some(entry) if entry.connected => {
                entry.connected = false;
                self.listed.remove(&entry.key);
                true
            }
            _ => false,
        }
    }

    /// The connected accounts' ids, newest first.
    pub fn ids(&self) -> Vec<String> {
        self.listed.values().cloned().collect()
    }

    /// Applies `f` to the account object of the platform or of a connected account; returns it
    /// before and after. A changed `created` moves the account in `/v1/accounts`.
    ///
    /// # Panics
    ///
    /// When `id` is neither the platform nor connected, or `f` changes the `id`.
    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut Value)) -> (Value, Value) {
        if id == self.platform.id {
            return edit(&mut self.platform_object, id, f);
        }
        let entry = match self.entries.get_mut(id) {
            Some(entry) if entry.connected => entry,
            _ => panic!("{id} is not connected to the platform"),
        };
        let (before, after) = edit(&mut entry.object, id, f);
        let created = created_of(&after);
        if created != entry.key.0 .0 {
            self.listed.remove(&entry.key);
            entry.key.0 = Reverse(created);
            self.listed.insert(entry.key, id.to_owned());
            self.newest = self.newest.max(created);
        }
        (before, after)
    }

    /// `GET /v1/account`: the account object of the account a request reached.
    pub fn account(&self, reached: &Account) -> Row {
        let object = match self.entries.get(&reached.id) {
            Some(entry) => &entry.object,
            None => &self.platform_object,
        };
        Row::plain(to_bytes(object))
    }

    /// `GET /v1/accounts/{id}`: a connected account's object, or the platform's own.
    ///
    /// # Errors
    ///
    /// 403 `account_invalid` for any other id, as for a `Stripe-Account` the platform cannot
    /// reach.
    pub fn retrieve(&self, id: &str, masked_key: &str) -> Result<Row, ApiError> {
        if id == self.platform.id {
            return Ok(Row::plain(to_bytes(&self.platform_object)));
        }
        match self.entries.get(id) {
            Some(entry) if entry.connected => Ok(Row::plain(to_bytes(&entry.object))),
            _ => Err(ApiError::no_access(masked_key, id)),
        }
    }

    /// `GET /v1/accounts`: one page of the connected accounts, newest first.
    ///
    /// # Errors
    ///
    /// 400 for an unknown or invalid parameter, or a cursor naming an account never connected.
    pub fn list(&self, pairs: &[(String, String)]) -> Result<Page, ApiError> {
        let mut params = ListParams::default();
        for (key, value) in pairs {
            if !params.common(key, value)? {
                return Err(ApiError::unknown_param(key));
            }
        }
        params.check_cursors()?;
        let cursor = |param: &str, id: &str| {
            self.entries
                .get(id)
                .map(|e| e.key)
                .ok_or_else(|| ApiError::no_such(400, "account", id, param))
        };
        let (picked, has_more) = pick(&self.listed, &params, cursor, |_| true)?;
        let rows = picked
            .into_iter()
            .filter_map(|id| self.entries.get(id))
            .map(|e| Row::plain(to_bytes(&e.object)))
            .collect();
        Ok(Page { rows, has_more })
    }
}
