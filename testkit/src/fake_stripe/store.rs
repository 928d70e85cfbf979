//! The fake's object store: one table per listable resource, plus each subscription's items.
//!
//! Invariants:
//! - A table keeps its rows in a `BTreeMap` ordered newest first: by `created` descending, ties by
//!   insertion sequence descending. An id maps to its sort key, so a cursor (`starting_after`) is a
//!   hash lookup and a page is a range walk: no request scans the table.
//! - Objects are stored already serialised; a page is a concatenation of stored bytes. The few fields
//!   list filters need (status, customer, product...) are kept beside the bytes.
//! - Replacing an object keeps its sequence number, so ties keep their order across updates.
//! - A subscription is stored without `items`; its items live in `items` (in subscription order)
//!   and are embedded when the subscription is rendered.
//! - A deleted object leaves its sort key behind, so a client paginating from it can carry on.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

/// Position in a table: newest first, then latest inserted first.
pub(crate) type SortKey = (Reverse<i64>, Reverse<u64>);

/// The resources the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Resource {
    Customer,
    Product,
    Price,
    Plan,
    Subscription,
    SubscriptionItem,
}

impl Resource {
    /// Every resource, in the order the names are listed in messages.
    pub const ALL: [Resource; 6] = [
        Resource::Customer,
        Resource::Product,
        Resource::Price,
        Resource::Plan,
        Resource::Subscription,
        Resource::SubscriptionItem,
    ];

    /// The object name (`customer`, `subscription_item`), as in Stripe's `object` field.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Customer => "customer",
            Resource::Product => "product",
            Resource::Price => "price",
            Resource::Plan => "plan",
            Resource::Subscription => "subscription",
            Resource::SubscriptionItem => "subscription_item",
        }
    }

    /// The list path (`/v1/customers`).
    pub fn path(self) -> &'static str {
        match self {
            Resource::Customer => "/v1/customers",
            Resource::Product => "/v1/products",
            Resource::Price => "/v1/prices",
            Resource::Plan => "/v1/plans",
            Resource::Subscription => "/v1/subscriptions",
            Resource::SubscriptionItem => "/v1/subscription_items",
        }
    }

    /// How Stripe names the object in `No such ...` messages.
    pub fn human(self) -> &'static str {
        match self {
            Resource::SubscriptionItem => "subscription item",
            r => r.name(),
        }
    }

    /// The resource with this object name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The resource whose list path ends in this segment (`customers`).
    pub fn from_segment(segment: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.path().strip_prefix("/v1/") == Some(segment))
    }

    /// The resource with this object name, for the public mutation helpers.
    ///
    /// # Panics
    ///
    /// When the name is not one of the served resources: a test bug, best reported loudly.
    pub fn named(name: &str) -> Self {
        Self::from_name(name).unwrap_or_else(|| {
            let known: Vec<_> = Self::ALL.iter().map(|r| r.name()).collect();
            panic!(
                "unknown resource {name:?}; the fake serves {}",
                known.join(", ")
            )
        })
    }

    fn table(self) -> usize {
        match self {
            Resource::Customer => 0,
            Resource::Product => 1,
            Resource::Price => 2,
            Resource::Plan => 3,
            Resource::Subscription | Resource::SubscriptionItem => 4,
        }
    }
}

/// The fields list filters look at, copied out of the object when it is stored.
#[derive(Debug, Default)]
pub(crate) struct Attrs {
    pub status: Option<Box<str>>,
    pub customer: Option<Box<str>>,
    pub product: Option<Box<str>>,
    pub email: Option<Box<str>>,
    pub active: Option<bool>,
}

impl Attrs {
    fn of(obj: &Map<String, Value>) -> Self {
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(Box::from);
        // `product` is an id, or an object when a test stores an expanded one.
        let product = text("product").or_else(|| {
            obj.get("product")
                .and_then(|p| p.get("id"))
                .and_then(Value::as_str)
                .map(Box::from)
        });
        Attrs {
            status: text("status"),
            customer: text("customer"),
            product,
            email: text("email"),
            active: obj.get("active").and_then(Value::as_bool),
        }
    }
}

/// One stored object.
#[derive(Debug)]
pub(crate) struct Stored {
    pub id: String,
    /// The object as served (a subscription without `items`).
    pub json: Bytes,
    pub attrs: Attrs,
}

/// One subscription item, in its subscription's order.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub id: String,
    pub json: Bytes,
}

/// One listable resource.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub rows: BTreeMap<SortKey, Stored>,
    pub keys: HashMap<String, SortKey>,
    /// Sort keys of deleted objects, so they still work as cursors.
    pub deleted: HashMap<String, SortKey>,
}

impl Table {
    /// Where `id` sits (or sat, if deleted) in the order.
    pub fn cursor(&self, id: &str) -> Option<SortKey> {
        self.keys.get(id).or_else(|| self.deleted.get(id)).copied()
    }

    /// The live row with this id.
    pub fn row(&self, id: &str) -> Option<&Stored> {
        self.keys.get(id).and_then(|k| self.rows.get(k))
    }
}

/// Everything the fake holds.
#[derive(Default)]
pub(crate) struct Store {
    next_seq: u64,
    tables: [Table; 5],
    /// Subscription id to its items, in subscription order.
    pub items: HashMap<String, Vec<Item>>,
    /// Item id to the subscription holding it.
    item_owner: HashMap<String, String>,
}

impl std::fmt::Debug for Store {
    /// Counts only: a store may hold a hundred thousand objects.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Store");
        for r in Resource::ALL {
            s.field(r.name(), &self.count(r));
        }
        s.finish()
    }
}

/// Serialises an object without one of its keys.
struct Without<'a>(&'a Map<String, Value>, &'a str);

impl Serialize for Without<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0.iter().filter(|(k, _)| k.as_str() != self.1) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

pub(crate) fn to_bytes<T: Serialize>(value: &T) -> Bytes {
    // Serialising a `Value` into memory cannot fail: its keys are strings.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

fn object_of(resource: Resource, obj: &Value) -> (&Map<String, Value>, String) {
    let map = obj
        .as_object()
        .unwrap_or_else(|| panic!("a {} must be a JSON object", resource.name()));
    let id = map
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("a {} needs a string \"id\"", resource.name()));
    (map, id.to_owned())
}

/// The current Unix time in seconds.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Store {
    pub fn table(&self, resource: Resource) -> &Table {
        &self.tables[resource.table()]
    }

    /// Inserts or replaces an object of a table resource, stored as given (a subscription's `items`
    /// key is left out; items are kept apart).
    ///
    /// # Panics
    ///
    /// When the object has no string `id` or no integer `created`, or names a subscription item.
    pub fn put(&mut self, resource: Resource, obj: &Value) {
        assert!(
            resource != Resource::SubscriptionItem,
            "subscription items belong to a subscription: use put_item"
        );
        let (map, id) = object_of(resource, obj);
        let created = map
            .get("created")
            .and_then(Value::as_i64)
            .unwrap_or_else(|| panic!("{} {id} needs an integer \"created\"", resource.name()));
        let json = if resource == Resource::Subscription {
            to_bytes(&Without(map, "items"))
        } else {
            to_bytes(map)
        };
        let stored = Stored {
            attrs: Attrs::of(map),
            json,
            id,
        };
        self.insert(resource, created, stored);
    }

    /// [`Store::put`] for an object already serialised, its filter fields already extracted.
    pub fn insert(&mut self, resource: Resource, created: i64, stored: Stored) {
        let fresh_seq = self.next_seq;
        let table = &mut self.tables[resource.table()];
        let seq = match table.keys.get(&stored.id) {
            Some(old) => {
                let old = *old;
                table.rows.remove(&old);
                old.1 .0
            }
            None => {
                table.deleted.remove(&stored.id);
                self.next_seq += 1;
                fresh_seq
            }
        };
        let key = (Reverse(created), Reverse(seq));
        table.keys.insert(stored.id.clone(), key);
        table.rows.insert(key, stored);
    }

    /// Inserts or replaces an owned object: fills a missing `created` with now, and for a new
    /// subscription takes its items from `items.data` when present. An existing subscription keeps
    /// its items (an `items` list read back from the fake is truncated, so it cannot be trusted).
    pub fn upsert(&mut self, resource: Resource, mut obj: Value) {
        if let Some(map) = obj.as_object_mut() {
            map.entry("created")
                .or_insert_with(|| Value::from(unix_now()));
        }
        match resource {
            Resource::SubscriptionItem => {
                let sub = obj
                    .get("subscription")
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("a subscription_item needs a \"subscription\""))
                    .to_owned();
                self.put_item(&sub, obj);
            }
            Resource::Subscription => {
                let (_, id) = object_of(resource, &obj);
                let existed = self.table(resource).keys.contains_key(&id);
                let items = obj
                    .as_object_mut()
                    .and_then(|m| m.remove("items"))
                    .and_then(|mut l| l.get_mut("data").map(Value::take));
                self.put(resource, &obj);
                if let (false, Some(Value::Array(items))) = (existed, items) {
                    self.set_items(&id, items);
                }
            }
            _ => self.put(resource, &obj),
        }
    }

    /// Adds an item to the end of a subscription's items, or replaces it where it stands. Its
    /// `subscription` field is set to `sub`.
    ///
    /// # Panics
    ///
    /// When the subscription does not exist or the item has no string `id`.
    pub fn put_item(&mut self, sub: &str, mut item: Value) {
        let (_, id) = object_of(Resource::SubscriptionItem, &item);
        if let Some(map) = item.as_object_mut() {
            map.insert("subscription".into(), Value::from(sub));
        }
        self.insert_item(sub, id, to_bytes(&item));
    }

    /// [`Store::put_item`] for an item already serialised with the right `subscription`.
    pub fn insert_item(&mut self, sub: &str, id: String, json: Bytes) {
        assert!(
            self.table(Resource::Subscription).keys.contains_key(sub),
            "subscription_item {id} for unknown subscription {sub:?}"
        );
        match self.item_owner.get(&id) {
            Some(owner) if owner == sub => {
                let list = self.items.entry(sub.to_owned()).or_default();
                if let Some(slot) = list.iter_mut().find(|i| i.id == id) {
                    slot.json = json;
                    return;
                }
            }
            Some(_) => {
                self.delete(Resource::SubscriptionItem, &id);
            }
            None => {}
        }
        self.item_owner.insert(id.clone(), sub.to_owned());
        self.items
            .entry(sub.to_owned())
            .or_default()
            .push(Item { id, json });
    }

    /// Replaces all of a subscription's items.
    pub fn set_items(&mut self, sub: &str, items: Vec<Value>) {
        for old in self.items.remove(sub).unwrap_or_default() {
            self.item_owner.remove(&old.id);
        }
        for item in items {
            self.put_item(sub, item);
        }
    }

    /// Removes an object from its lists; returns whether it was there. A subscription takes its
    /// items with it.
    pub fn delete(&mut self, resource: Resource, id: &str) -> bool {
        if resource == Resource::SubscriptionItem {
            let Some(sub) = self.item_owner.remove(id) else {
                return false;
            };
            if let Some(list) = self.items.get_mut(&sub) {
                list.retain(|i| i.id != id);
            }
            return true;
        }
        let table = &mut self.tables[resource.table()];
        let Some(key) = table.keys.remove(id) else {
            return false;
        };
        table.rows.remove(&key);
        table.deleted.insert(id.to_owned(), key);
        if resource == Resource::Subscription {
            self.set_items(id, Vec::new());
        }
        true
    }

    /// Stores `obj`, an edited copy of object `id` as served, in its place. A subscription's
    /// `items` cannot be changed this way (an embedded list is truncated), so that key is ignored.
    pub fn replace(&mut self, resource: Resource, id: &str, mut obj: Value) {
        if let Some(map) = obj.as_object_mut() {
            map.remove("items");
        }
        if obj.get("id").and_then(Value::as_str) != Some(id) {
            // The caller renamed it: the old id is gone.
            self.delete(resource, id);
        }
        self.upsert(resource, obj);
    }

    /// The subscription holding an item.
    pub fn owner_of(&self, item_id: &str) -> Option<&str> {
        self.item_owner.get(item_id).map(String::as_str)
    }

    /// Whether a live (not deleted) object has this id.
    pub fn contains(&self, resource: Resource, id: &str) -> bool {
        match resource {
            Resource::SubscriptionItem => self.item_owner.contains_key(id),
            r => self.table(r).keys.contains_key(id),
        }
    }

    /// Live ids, newest first (items: by subscription, newest first, then in subscription order).
    pub fn ids(&self, resource: Resource) -> Vec<String> {
        let subs = self.table(resource).rows.values().map(|s| s.id.clone());
        if resource != Resource::SubscriptionItem {
            return subs.collect();
        }
        subs.flat_map(|sub| self.items.get(&sub).into_iter().flatten())
            .map(|i| i.id.clone())
            .collect()
    }

    /// How many live objects a resource has.
    pub fn count(&self, resource: Resource) -> usize {
        match resource {
            Resource::SubscriptionItem => self.item_owner.len(),
            r => self.table(r).keys.len(),
        }
    }

    /// The object as a retrieve would serve it (a subscription with its embedded items).
    pub fn get(&self, resource: Resource, id: &str) -> Option<Value> {
        let bytes = if resource == Resource::SubscriptionItem {
            let sub = self.item_owner.get(id)?;
            self.items
                .get(sub)?
                .iter()
                .find(|i| i.id == id)?
                .json
                .clone()
        } else {
            let mut out = Vec::new();
            self.row(resource, id)?.write(&mut out);
            Bytes::from(out)
        };
        serde_json::from_slice(&bytes).ok()
    }
}
