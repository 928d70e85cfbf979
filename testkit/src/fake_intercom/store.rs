//! The fake's object store: one table per resource, plus each conversation's parts.
//!
//! Invariants:
//! - A table keeps its rows in a `BTreeMap` ordered oldest first: by `created_at`, ties by
//!   insertion sequence. An id maps to its sort key, so a retrieve is a hash lookup and a page is a
//!   range walk from the cursor's key: no list request scans the table. Admins have no
//!   `created_at` and keep insertion order.
//! - Objects are stored serialised; the two fields search looks at (`created_at`, `updated_at`) are
//!   kept beside the bytes.
//! - Replacing an object keeps its sequence number, so ties keep their order across updates.
//! - A conversation is stored without `conversation_parts`; its parts live in `parts`, oldest
//!   first, and are embedded (the newest [`MAX_EMBEDDED_PARTS`]) when it is retrieved, never when
//!   it is listed.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::fake_stripe::to_bytes;

/// The most parts a retrieved conversation embeds (the newest ones), as on Intercom.
pub const MAX_EMBEDDED_PARTS: usize = 500;

/// Position in a table: `(created_at, insertion sequence)`, ascending.
pub(crate) type Key = (i64, u64);

/// The resources the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Resource {
    Admin,
    Company,
    Contact,
    Conversation,
}

impl Resource {
    pub const ALL: [Resource; 4] = [
        Resource::Admin,
        Resource::Company,
        Resource::Contact,
        Resource::Conversation,
    ];

    /// The object's `type`: `admin`, `company`, `contact`, `conversation`.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Admin => "admin",
            Resource::Company => "company",
            Resource::Contact => "contact",
            Resource::Conversation => "conversation",
        }
    }

    /// Whether its objects carry `created_at` and `updated_at` (admins do not).
    pub fn timestamped(self) -> bool {
        self != Resource::Admin
    }

    /// The resource with this name, for the public helpers.
    ///
    /// # Panics
    ///
    /// When the name is not one of the served resources: a test bug, best reported loudly.
    pub fn named(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .unwrap_or_else(|| {
                panic!(
                    "unknown resource {name:?}; the fake serves admin, company, contact and \
                     conversation (parts through set_parts and parts)"
                )
            })
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One stored object.
#[derive(Debug)]
pub(crate) struct Stored {
    pub id: String,
    /// The object as served in lists (a conversation without its parts).
    pub json: Bytes,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One resource's objects.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub rows: BTreeMap<Key, Stored>,
    pub keys: HashMap<String, Key>,
}

impl Table {
    pub fn row(&self, id: &str) -> Option<&Stored> {
        self.keys.get(id).and_then(|k| self.rows.get(k))
    }
}

/// Everything the fake holds.
#[derive(Default)]
pub(crate) struct Store {
    next_seq: u64,
    tables: [Table; 4],
    /// Conversation id to its parts (serialised), oldest first.
    parts: HashMap<String, Vec<Bytes>>,
}

impl std::fmt::Debug for Store {
    /// Counts only: a store may hold a hundred thousand objects.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Store");
        for r in Resource::ALL {
            s.field(r.name(), &self.table(r).keys.len());
        }
        s.field("parts", &self.parts.values().map(Vec::len).sum::<usize>());
        s.finish()
    }
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

impl Store {
    pub fn table(&self, resource: Resource) -> &Table {
        &self.tables[resource.index()]
    }

    /// Inserts or replaces an already serialised object; a replaced one keeps its sequence.
    pub fn insert(&mut self, resource: Resource, stored: Stored) {
        let table = &mut self.tables[resource.index()];
        let seq = match table.keys.get(&stored.id) {
            Some(&old) => {
                table.rows.remove(&old);
                old.1
            }
            None => {
                self.next_seq += 1;
                self.next_seq
            }
        };
        let key = (stored.created_at, seq);
        table.keys.insert(stored.id.clone(), key);
        table.rows.insert(key, stored);
    }

    /// Inserts or replaces an object. Missing `created_at` and `updated_at` are set to `now`
    /// (`updated_at` to `created_at` when only it is given); admins are stored as given. A
    /// conversation's `conversation_parts` (a `conversation_part.list` or a bare array) replace its
    /// parts; without that key, an existing conversation keeps its parts.
    ///
    /// # Panics
    ///
    /// When the object is not a JSON object or has no string `id`, its timestamps are not
    /// integers, or a part has no id.
    pub fn upsert(&mut self, resource: Resource, mut obj: Value, now: i64) {
        let (_, id) = object_of(resource, &obj);
        let parts = if resource == Resource::Conversation {
            obj.as_object_mut()
                .and_then(|m| m.remove("conversation_parts"))
                .map(|p| match p {
                    Value::Array(list) => list,
                    mut list => match list.get_mut("conversation_parts").map(Value::take) {
                        Some(Value::Array(list)) => list,
                        _ => Vec::new(),
                    },
                })
        } else {
            None
        };
        let (mut created_at, mut updated_at) = (0, 0);
        if let Some(map) = obj.as_object_mut().filter(|_| resource.timestamped()) {
            let int = |k: &str| {
                map.get(k).map(|v| {
                    v.as_i64().unwrap_or_else(|| {
                        panic!("{} {id}: {k} must be an integer", resource.name())
                    })
                })
            };
            created_at = int("created_at").unwrap_or(now);
            updated_at = int("updated_at").unwrap_or(created_at);
            map.insert("created_at".into(), created_at.into());
            map.insert("updated_at".into(), updated_at.into());
        }
        let stored = Stored {
            json: to_bytes(&obj),
            id: id.clone(),
            created_at,
            updated_at,
        };
        self.insert(resource, stored);
        if let Some(parts) = parts {
            self.set_parts(&id, parts);
        }
    }

    /// Replaces a conversation's parts (oldest first). A part's `id` may be a string or a number.
    ///
    /// # Panics
    ///
    /// When the conversation does not exist or a part has no id.
    pub fn set_parts(&mut self, conversation: &str, parts: Vec<Value>) {
        assert!(
            self.table(Resource::Conversation)
                .keys
                .contains_key(conversation),
            "parts for unknown conversation {conversation:?}"
        );
        let parts = parts
            .into_iter()
            .map(|p| {
                assert!(
                    matches!(p.get("id"), Some(Value::String(_) | Value::Number(_))),
                    "a conversation part needs an \"id\": {p}"
                );
                to_bytes(&p)
            })
            .collect();
        self.parts.insert(conversation.to_owned(), parts);
    }

    /// Sets already serialised parts.
    pub fn put_parts(&mut self, conversation: &str, parts: Vec<Bytes>) {
        self.parts.insert(conversation.to_owned(), parts);
    }

    /// Removes an object; returns whether it was there. A conversation takes its parts with it.
    pub fn delete(&mut self, resource: Resource, id: &str) -> bool {
        let table = &mut self.tables[resource.index()];
        let Some(key) = table.keys.remove(id) else {
            return false;
        };
        table.rows.remove(&key);
        self.parts.remove(id);
        true
    }

    /// Live ids in list order (oldest first).
    pub fn ids(&self, resource: Resource) -> Vec<String> {
        self.table(resource)
            .rows
            .values()
            .map(|s| s.id.clone())
            .collect()
    }

    /// How many objects a resource has.
    pub fn count(&self, resource: Resource) -> usize {
        self.table(resource).keys.len()
    }

    /// The object as a retrieve serves it (a conversation with its parts).
    pub fn get(&self, resource: Resource, id: &str) -> Option<Value> {
        let stored = self.table(resource).row(id)?;
        serde_json::from_slice(&self.retrieved(resource, stored)).ok()
    }

    /// A conversation's parts, oldest first, all of them (not only those a retrieve embeds).
    pub fn parts(&self, conversation: &str) -> Option<Vec<Value>> {
        self.table(Resource::Conversation).row(conversation)?;
        let parts = self.parts.get(conversation).map_or(&[][..], Vec::as_slice);
        Some(
            parts
                .iter()
                .filter_map(|p| serde_json::from_slice(p).ok())
                .collect(),
        )
    }

    /// The bytes of a retrieve: the stored object, and for a conversation its newest parts.
    pub fn retrieved(&self, resource: Resource, stored: &Stored) -> Bytes {
        if resource != Resource::Conversation {
            return stored.json.clone();
        }
        let parts = self.parts.get(&stored.id).map_or(&[][..], Vec::as_slice);
        let shown = &parts[parts.len().saturating_sub(MAX_EMBEDDED_PARTS)..];
        let size: usize = shown.iter().map(|p| p.len() + 1).sum();
        let mut out = Vec::with_capacity(stored.json.len() + size + 100);
        // Stored conversations are non-empty objects: reopen before the closing brace.
        let body = stored.json.strip_suffix(b"}").unwrap_or(&stored.json);
        out.extend_from_slice(body);
        if body.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(
            br#""conversation_parts":{"type":"conversation_part.list","conversation_parts":["#,
        );
        for (i, part) in shown.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(part);
        }
        out.extend_from_slice(format!(r#"],"total_count":{}}}}}"#, shown.len()).as_bytes());
        Bytes::from(out)
    }

    /// Replaces object `id` with `obj`, an edited copy of it as served: a conversation's
    /// `conversation_parts` key is ignored (edit parts with [`Store::set_parts`]). A changed id
    /// removes the old object.
    pub fn replace(&mut self, resource: Resource, id: &str, mut obj: Value, now: i64) {
        if let Some(map) = obj.as_object_mut() {
            map.remove("conversation_parts");
        }
        let new_id = obj.get("id").and_then(Value::as_str).map(str::to_owned);
        if new_id.as_deref() != Some(id) {
            let parts = self.parts.remove(id);
            self.delete(resource, id);
            self.upsert(resource, obj, now);
            if let (Some(new_id), Some(parts)) = (new_id, parts) {
                self.parts.insert(new_id, parts);
            }
        } else {
            self.upsert(resource, obj, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversations_keep_parts_apart_and_embed_the_newest() {
        let mut store = Store::default();
        let parts: Vec<Value> = (0..MAX_EMBEDDED_PARTS + 3)
            .map(|i| json!({"type": "conversation_part", "id": i.to_string()}))
            .collect();
        store.upsert(
            Resource::Conversation,
            json!({"type": "conversation", "id": "7", "created_at": 5,
                   "conversation_parts": {"type": "conversation_part.list",
                                          "conversation_parts": parts, "total_count": 0}}),
            100,
        );
        let stored = store.table(Resource::Conversation).row("7").unwrap();
        assert!(!String::from_utf8_lossy(&stored.json).contains("conversation_parts"));
        assert_eq!((stored.created_at, stored.updated_at), (5, 5));
        let got = store.get(Resource::Conversation, "7").unwrap();
        let shown = got["conversation_parts"]["conversation_parts"]
            .as_array()
            .unwrap();
        assert_eq!(shown.len(), MAX_EMBEDDED_PARTS);
        assert_eq!(shown[0]["id"], "3");
        assert_eq!(got["conversation_parts"]["total_count"], 500);
        assert_eq!(store.parts("7").unwrap().len(), MAX_EMBEDDED_PARTS + 3);
        store.replace(
            Resource::Conversation,
            "7",
            json!({"type": "conversation", "id": "8", "created_at": 5}),
            100,
        );
        assert!(store.get(Resource::Conversation, "7").is_none());
        assert_eq!(store.parts("8").unwrap().len(), MAX_EMBEDDED_PARTS + 3);
        assert!(store.delete(Resource::Conversation, "8"));
        assert!(store.parts("8").is_none());
    }

    #[test]
    fn fills_timestamps_and_keeps_order() {
        let mut store = Store::default();
        store.upsert(Resource::Contact, json!({"id": "b", "created_at": 10}), 50);
        store.upsert(Resource::Contact, json!({"id": "a"}), 50);
        store.upsert(Resource::Contact, json!({"id": "c", "created_at": 10}), 50);
        assert_eq!(store.ids(Resource::Contact), ["b", "c", "a"]);
        let a = store.get(Resource::Contact, "a").unwrap();
        assert_eq!(
            (a["created_at"].as_i64(), a["updated_at"].as_i64()),
            (Some(50), Some(50))
        );
        store.upsert(
            Resource::Contact,
            json!({"id": "b", "created_at": 10, "x": 1}),
            50,
        );
        assert_eq!(store.ids(Resource::Contact), ["b", "c", "a"]);
        store.upsert(Resource::Admin, json!({"type": "admin", "id": "1"}), 50);
        assert!(store
            .get(Resource::Admin, "1")
            .unwrap()
            .get("created_at")
            .is_none());
    }
}
