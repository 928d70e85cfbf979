//! The fake's object store: one table per row of the connector's table, plus the children of
//! each parent.
//!
//! Invariants:
//! - A table keeps its rows in a `BTreeMap` ordered newest first: by `created` descending (an
//!   object without one, an invoice item, by its `date`), ties by insertion sequence descending.
//!   An id maps to its sort key, so a cursor (`starting_after`) is a hash lookup and a page is a
//!   range walk: no request scans the table.
//! - Objects are stored already serialised; a page is a concatenation of stored bytes. The few
//!   fields list filters need (status, customer, product...) are kept beside the bytes.
//! - Replacing an object keeps its sequence number, so ties keep their order across updates.
//! - A parent (a subscription, an invoice) is stored without its child field (`items`, `lines`);
//!   its children live apart, in the parent's order, and are embedded when it is rendered.
//! - An object of a resource listed per customer is also indexed under its `customer`, in the
//!   same order, so a customer's list is a range walk too.
//! - A deleted object leaves its sort key behind, so a client paginating from it can carry on.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use supasaasy_stripe::resources::TABLE;

use super::kinds::Kind;

/// Position in a table: newest first, then latest inserted first.
pub(crate) type SortKey = (Reverse<i64>, Reverse<u64>);

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
        Attrs {
            status: text("status"),
            customer: reference(obj, "customer"),
            product: reference(obj, "product"),
            email: text("email"),
            active: obj.get("active").and_then(Value::as_bool),
        }
    }
}

/// The id a field refers to: an id, or an expanded object's `id` when a test stores one.
fn reference(obj: &Map<String, Value>, field: &str) -> Option<Box<str>> {
    let value = obj.get(field)?;
    value
        .as_str()
        .or_else(|| value.get("id").and_then(Value::as_str))
        .map(Box::from)
}

/// One stored object.
#[derive(Debug)]
pub(crate) struct Stored {
    pub id: String,
    /// The object as served (a parent without its child field).
    pub json: Bytes,
    pub attrs: Attrs,
}

/// One child, in its parent's order.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub id: String,
    pub json: Bytes,
}

/// The objects of one row of the table.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub rows: BTreeMap<SortKey, Stored>,
    pub keys: HashMap<String, SortKey>,
    /// Sort keys of deleted objects, so they still work as cursors.
    pub deleted: HashMap<String, SortKey>,
    /// For a resource listed per customer: each customer's objects (their ids), newest first.
    pub by_customer: HashMap<String, BTreeMap<SortKey, String>>,
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

    /// Takes a live row out of the order and of its customer's list; leaves its key as a cursor.
    fn remove(&mut self, id: &str) -> Option<Stored> {
        let key = self.keys.remove(id)?;
        let stored = self.rows.remove(&key)?;
        self.deleted.insert(id.to_owned(), key);
        if let Some(customer) = &stored.attrs.customer {
            if let Some(list) = self.by_customer.get_mut(&**customer) {
                list.remove(&key);
            }
        }
        Some(stored)
    }
}

/// The children of one row's objects.
#[derive(Debug, Default)]
pub(crate) struct Children {
    /// Parent id to its children, in the parent's order.
    pub lists: HashMap<String, Vec<Item>>,
    /// Child id to the parent holding it.
    owner: HashMap<String, String>,
}

impl Children {
    /// The children of a parent, in its order.
    pub fn of(&self, parent: &str) -> &[Item] {
        self.lists.get(parent).map_or(&[][..], Vec::as_slice)
    }

    /// The parent holding a child.
    pub fn owner_of(&self, id: &str) -> Option<&str> {
        self.owner.get(id).map(String::as_str)
    }

    /// One child by id.
    pub fn get(&self, id: &str) -> Option<&Item> {
        self.of(self.owner_of(id)?).iter().find(|i| i.id == id)
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(parent) = self.owner.remove(id) else {
            return false;
        };
        if let Some(list) = self.lists.get_mut(&parent) {
            list.retain(|i| i.id != id);
        }
        true
    }

    fn clear(&mut self, parent: &str) {
        for old in self.lists.remove(parent).unwrap_or_default() {
            self.owner.remove(&old.id);
        }
    }
}

/// Everything the fake holds: a table and the children of each row of the connector's table.
pub(crate) struct Store {
    next_seq: u64,
    tables: Vec<Table>,
    children: Vec<Children>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            next_seq: 0,
            tables: TABLE.iter().map(|_| Table::default()).collect(),
            children: TABLE.iter().map(|_| Children::default()).collect(),
        }
    }
}

impl std::fmt::Debug for Store {
    /// Counts only: a store may hold a hundred thousand objects.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Store");
        for kind in Kind::all().filter(|k| self.count(*k) > 0) {
            s.field(kind.name(), &self.count(kind));
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

fn object_of(kind: Kind, obj: &Value) -> (&Map<String, Value>, String) {
    let map = obj
        .as_object()
        .unwrap_or_else(|| panic!("a {} must be a JSON object", kind.name()));
    let id = map
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("a {} needs a string \"id\"", kind.name()));
    (map, id.to_owned())
}

/// When an object was made, for its place in lists: `created`, or an invoice item's `date`.
fn time_of(map: &Map<String, Value>) -> Option<i64> {
    ["created", "date"]
        .iter()
        .find_map(|k| map.get(*k).and_then(Value::as_i64))
}

/// The current Unix time in seconds.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Store {
    /// The objects of `TABLE[row]`.
    pub fn table(&self, row: usize) -> &Table {
        &self.tables[row]
    }

    /// The children of the objects of `TABLE[row]`.
    pub fn children(&self, row: usize) -> &Children {
        &self.children[row]
    }

    /// Inserts or replaces an object of `TABLE[row]`, stored as given but for its child field.
    /// An object without `created` (or `date`) is placed at `now`.
    ///
    /// # Panics
    ///
    /// When the object has no string `id`.
    pub fn put(&mut self, row: usize, obj: &Value, now: i64) {
        let kind = Kind::Row(row);
        let (map, id) = object_of(kind, obj);
        let json = match &TABLE[row].child {
            Some(child) => to_bytes(&Without(map, child.field)),
            None => to_bytes(map),
        };
        let stored = Stored {
            attrs: Attrs::of(map),
            json,
            id,
        };
        self.insert(row, time_of(map).unwrap_or(now), stored);
    }

    /// [`Store::put`] for an object already serialised, its filter fields already extracted.
    pub fn insert(&mut self, row: usize, time: i64, stored: Stored) {
        let per_customer = Kind::Row(row).owner().is_some();
        let table = &mut self.tables[row];
        // A replaced object keeps its sequence number, so it keeps its place among its ties.
        let seq = match table.keys.get(&stored.id).copied() {
            Some(old) => {
                table.remove(&stored.id);
                old.1 .0
            }
            None => {
                self.next_seq += 1;
                self.next_seq - 1
            }
        };
        table.deleted.remove(&stored.id);
        let key = (Reverse(time), Reverse(seq));
        if let (true, Some(customer)) = (per_customer, &stored.attrs.customer) {
            let list = table.by_customer.entry(customer.to_string()).or_default();
            list.insert(key, stored.id.clone());
        }
        table.keys.insert(stored.id.clone(), key);
        table.rows.insert(key, stored);
    }

    /// Inserts or replaces an owned object of any kind. A missing `created` is set to `now` on
    /// kinds whose objects carry one. A new parent takes its children from its child field's
    /// `data` when present; an existing one keeps its own (a list read back from the fake is
    /// truncated, so it cannot be trusted). A child goes to the parent its `parent_field` names
    /// (or the one holding it already).
    ///
    /// # Panics
    ///
    /// When the object has no string `id`, a child names no existing parent, or an object of a
    /// resource listed per customer names no live customer (`"customer": null` is a detached
    /// object, in no customer's list).
    pub fn upsert(&mut self, kind: Kind, mut obj: Value, now: i64) {
        let row = kind.index();
        if let Some(child) = kind.child() {
            let (map, id) = object_of(kind, &obj);
            let parent = map
                .get(child.parent_field)
                .and_then(Value::as_str)
                .or_else(|| self.children[row].owner_of(&id))
                .unwrap_or_else(|| {
                    panic!(
                        "a {} needs a \"{}\" (or use set_children)",
                        kind.name(),
                        child.parent_field
                    )
                })
                .to_owned();
            self.put_child(row, &parent, obj);
            return;
        }
        if let (true, Some(map)) = (kind.stamped(), obj.as_object_mut()) {
            map.entry("created").or_insert_with(|| Value::from(now));
        }
        let (map, id) = object_of(kind, &obj);
        if let Some(owner) = kind.owner() {
            let customer = map.get("customer").unwrap_or(&Value::Null);
            let live = customer
                .as_str()
                .is_some_and(|c| self.tables[owner].keys.contains_key(c));
            assert!(
                live || customer.is_null() && map.contains_key("customer"),
                "{} {id} names no live customer: {customer}",
                kind.name()
            );
        }
        let Some(child) = &TABLE[row].child else {
            self.put(row, &obj, now);
            return;
        };
        let existed = self.tables[row].keys.contains_key(&id);
        let children = obj
            .as_object_mut()
            .and_then(|m| m.remove(child.field))
            .and_then(|mut l| l.get_mut("data").map(Value::take));
        self.put(row, &obj, now);
        if let (false, Some(Value::Array(children))) = (existed, children) {
            self.set_children(row, &id, children);
        }
    }

    /// Adds a child to the end of a parent's children, or replaces it where it stands. Its
    /// parent field is set to `parent` on kinds whose children name their parent.
    ///
    /// # Panics
    ///
    /// When the parent does not exist or the child has no string `id`.
    pub fn put_child(&mut self, row: usize, parent: &str, mut item: Value) {
        let kind = Kind::Child(row);
        let (_, id) = object_of(kind, &item);
        if let (true, Some(map), Some(child)) =
            (kind.names_parent(), item.as_object_mut(), kind.child())
        {
            map.insert(child.parent_field.into(), Value::from(parent));
        }
        self.insert_child(row, parent, id, to_bytes(&item));
    }

    /// [`Store::put_child`] for a child already serialised as it should be served.
    ///
    /// # Panics
    ///
    /// When the parent does not exist.
    pub fn insert_child(&mut self, row: usize, parent: &str, id: String, json: Bytes) {
        assert!(
            self.tables[row].keys.contains_key(parent),
            "{} {id} for unknown {} {parent:?}",
            Kind::Child(row).name(),
            TABLE[row].name
        );
        let children = &mut self.children[row];
        match children.owner.get(&id) {
            Some(owner) if owner == parent => {
                let list = children.lists.entry(parent.to_owned()).or_default();
                if let Some(slot) = list.iter_mut().find(|i| i.id == id) {
                    slot.json = json;
                    return;
                }
            }
            Some(_) => {
                children.remove(&id);
            }
            None => {}
        }
        children.owner.insert(id.clone(), parent.to_owned());
        children
            .lists
            .entry(parent.to_owned())
            .or_default()
            .push(Item { id, json });
    }

    /// Replaces all of a parent's children.
    ///
    /// # Panics
    ///
    /// When the parent does not exist or a child has no string `id`.
    pub fn set_children(&mut self, row: usize, parent: &str, items: Vec<Value>) {
        self.children[row].clear(parent);
        for item in items {
            self.put_child(row, parent, item);
        }
    }

    /// Removes an object from its lists; returns whether it was there. A parent takes its
    /// children with it.
    pub fn delete(&mut self, kind: Kind, id: &str) -> bool {
        let row = kind.index();
        if kind.child().is_some() {
            return self.children[row].remove(id);
        }
        if self.tables[row].remove(id).is_none() {
            return false;
        }
        self.children[row].clear(id);
        true
    }

    /// Stores `obj`, an edited copy of object `id` as served, in its place. A parent's child
    /// field cannot be changed this way (an embedded list is truncated), so it is ignored.
    ///
    /// # Panics
    ///
    /// As [`Store::upsert`].
    pub fn replace(&mut self, kind: Kind, id: &str, mut obj: Value, now: i64) {
        if let (Some(map), Some(child)) = (obj.as_object_mut(), &kind.row().child) {
            if kind.child().is_none() {
                map.remove(child.field);
            }
        }
        if obj.get("id").and_then(Value::as_str) != Some(id) {
            // The caller renamed it: the old id is gone.
            self.delete(kind, id);
        }
        self.upsert(kind, obj, now);
    }

    /// Live ids, newest first (children: by parent, newest first, then in the parent's order).
    pub fn ids(&self, kind: Kind) -> Vec<String> {
        let table = &self.tables[kind.index()];
        let parents = table.rows.values().map(|s| s.id.as_str());
        match kind {
            Kind::Row(_) => parents.map(str::to_owned).collect(),
            Kind::Child(row) => parents
                .flat_map(|parent| self.children[row].of(parent))
                .map(|i| i.id.clone())
                .collect(),
        }
    }

    /// How many live objects a kind has.
    pub fn count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Child(row) => self.children[row].owner.len(),
            Kind::Row(row) => self.tables[row].keys.len(),
        }
    }

    /// The object as a retrieve would serve it (a parent with its children embedded).
    pub fn get(&self, kind: Kind, id: &str) -> Option<Value> {
        let bytes = match kind {
            Kind::Child(row) => self.children[row].get(id)?.json.clone(),
            Kind::Row(row) => {
                let mut out = Vec::new();
                self.row(row, id)?.write(&mut out);
                Bytes::from(out)
            }
        };
        serde_json::from_slice(&bytes).ok()
    }
}
