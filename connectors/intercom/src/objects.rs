//! What an Intercom object becomes in the mirror, without any I/O: which resource it belongs to,
//! its record, a conversation's parts, and the change a fetch or an event makes.
//!
//! Everything here is a pure function of the JSON Intercom sent, shared by listings, searches,
//! fetches and webhooks so that one object always becomes the same record whatever brought it. An
//! object without a usable `id` is [`Malformed`], never guessed around.

use serde_json::{json, Value};
use supasaasy_connector::{Change, ChildSet, Record};

use crate::{PART_COLLECTION, PART_PARENT_FIELD};

/// An answer that breaks Intercom's contract; the caller adds which app and request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub String);

/// The resources this connector syncs, and where Intercom serves each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Company,
    Contact,
    Admin,
    Conversation,
}

impl Kind {
    /// The kind of a resource name, `None` when this connector does not sync it.
    pub fn find(name: &str) -> Option<Kind> {
        match name {
            "company" => Some(Kind::Company),
            "contact" => Some(Kind::Contact),
            "admin" => Some(Kind::Admin),
            "conversation" => Some(Kind::Conversation),
            _ => None,
        }
    }

    /// The resource name (`contact`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Company => "company",
            Kind::Contact => "contact",
            Kind::Admin => "admin",
            Kind::Conversation => "conversation",
        }
    }

    /// The collection key of the resource's rows.
    pub fn collection_key(self) -> &'static str {
        match self {
            Kind::Company => "intercom_company",
            Kind::Contact => "intercom_contact",
            Kind::Admin => "intercom_admin",
            Kind::Conversation => "intercom_conversation",
        }
    }

    /// The path of the resource's objects (`contacts`, so one is `contacts/{id}`).
    pub fn path(self) -> &'static str {
        match self {
            Kind::Company => "companies",
            Kind::Contact => "contacts",
            Kind::Admin => "admins",
            Kind::Conversation => "conversations",
        }
    }
}

/// An object's `id` as a string: Intercom sends most ids as strings and some (conversation
/// parts) as numbers.
pub(crate) fn id_of(object: &Value) -> Result<String, Malformed> {
    match object.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        Some(Value::Number(id)) => Ok(id.to_string()),
        Some(_) => Err(Malformed("an object has an unusable id".into())),
        None => Err(Malformed("an object has no id".into())),
    }
}

/// A Unix time field (`created_at`, `updated_at`), as a number or a string of digits.
pub(crate) fn unix_field(object: &Value, field: &str) -> Option<i64> {
    match object.get(field)? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The record of one object of `kind`, as Intercom sent it. Only contacts are archived
/// (`"archived": true`); the others have no such state.
pub(crate) fn record(kind: Kind, object: Value) -> Result<Record, Malformed> {
    if !object.is_object() {
        return Err(Malformed(format!("a {} is not an object", kind.name())));
    }
    let external_id = id_of(&object)?;
    let archived = kind == Kind::Contact && object.get("archived") == Some(&Value::Bool(true));
    Ok(Record {
        collection_key: kind.collection_key(),
        external_id,
        created: unix_field(&object, "created_at"),
        archived,
        payload: object.into(),
    })
}

/// A full conversation (from `GET /conversations/{id}`) as its record and the records of its parts,
/// each part's payload carrying `conversation_id` (parts have no parent id of their own).
///
/// Intercom serves at most the 500 most recent parts of a conversation; the older ones are not
/// in the answer and so not in the set.
pub(crate) fn conversation_records(
    conversation: Value,
) -> Result<(Record, Vec<Record>), Malformed> {
    let conversation_id = id_of(&conversation)?;
    let parts = conversation
        .get("conversation_parts")
        .and_then(|list| list.get("conversation_parts"))
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Malformed(format!(
                "conversation {conversation_id} comes without conversation_parts.conversation_parts"
            ))
        })?;
    let parts = parts
        .iter()
        .map(|part| part_record(&conversation_id, part.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let record = record(Kind::Conversation, conversation)?;
    Ok((record, parts))
}

/// The record of one conversation part, with the id of its conversation added.
fn part_record(conversation_id: &str, mut part: Value) -> Result<Record, Malformed> {
    let external_id = id_of(&part)
        .map_err(|Malformed(why)| Malformed(format!("{why} (a part of {conversation_id})")))?;
    let created = unix_field(&part, "created_at");
    let Some(fields) = part.as_object_mut() else {
        return Err(Malformed(format!(
            "a part of conversation {conversation_id} is not an object"
        )));
    };
    fields.insert(PART_PARENT_FIELD.into(), Value::from(conversation_id));
    Ok(Record {
        collection_key: PART_COLLECTION,
        external_id,
        payload: part.into(),
        created,
        archived: false,
    })
}

/// The change of a full conversation: the conversation and its parts, the set complete unless
/// Intercom may have left some out.
pub(crate) fn conversation_change(conversation: Value) -> Result<Change, Malformed> {
    let complete = all_parts_served(&conversation);
    let (record, parts) = conversation_records(conversation)?;
    Ok(Change {
        resource: Kind::Conversation.name(),
        record,
        deleted: false,
        children: Some(part_set(parts, complete)),
    })
}

/// Intercom serves at most this many of a conversation's parts, the newest.
const MAX_SERVED_PARTS: usize = 500;

/// Whether a retrieved conversation carries all its parts: fewer than Intercom serves at most, and
/// no count (the list's `total_count`, `statistics.count_conversation_parts`) saying it has more.
fn all_parts_served(conversation: &Value) -> bool {
    let list = conversation.get("conversation_parts");
    let served = list
        .and_then(|l| l.get("conversation_parts"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let counts = [
        list.and_then(|l| l.get("total_count")),
        conversation
            .get("statistics")
            .and_then(|s| s.get("count_conversation_parts")),
    ];
    let counted = counts.into_iter().flatten().filter_map(Value::as_u64).max();
    served < MAX_SERVED_PARTS && counted.is_none_or(|n| n <= served as u64)
}

/// The upsert of one object whose children, if it has any, are not known.
pub(crate) fn upsert(kind: Kind, object: Value) -> Result<Change, Malformed> {
    Ok(Change {
        resource: kind.name(),
        record: record(kind, object)?,
        deleted: false,
        children: None,
    })
}

/// The deletion of one object: its row becomes a tombstone holding `payload`, and a deleted
/// conversation takes all its parts with it.
pub(crate) fn deletion(kind: Kind, external_id: String, payload: Value) -> Change {
    Change {
        resource: kind.name(),
        record: Record {
            collection_key: kind.collection_key(),
            external_id,
            created: unix_field(&payload, "created_at"),
            payload: payload.into(),
            archived: false,
        },
        deleted: true,
        children: (kind == Kind::Conversation).then(|| part_set(Vec::new(), true)),
    }
}

/// The deletion of an object Intercom no longer has, known only by its id.
pub(crate) fn gone(kind: Kind, id: &str) -> Change {
    deletion(kind, id.to_owned(), json!({"id": id, "deleted": true}))
}

fn part_set(records: Vec<Record>, complete: bool) -> ChildSet {
    ChildSet {
        collection_key: PART_COLLECTION,
        parent_field: PART_PARENT_FIELD,
        records,
        complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_know_their_paths() {
        for kind in [
            Kind::Company,
            Kind::Contact,
            Kind::Admin,
            Kind::Conversation,
        ] {
            assert_eq!(Kind::find(kind.name()), Some(kind));
            assert!(kind.collection_key().starts_with("intercom_"));
        }
        assert_eq!(Kind::Company.path(), "companies");
        assert_eq!(Kind::find("ticket"), None);
    }

    #[test]
    fn ids_are_strings_or_numbers() {
        assert_eq!(id_of(&json!({"id": "6762f0dd"})), Ok("6762f0dd".into()));
        assert_eq!(id_of(&json!({"id": 1234567})), Ok("1234567".into()));
        for bad in [
            json!({"id": ""}),
            json!({"id": null}),
            json!({"id": [1]}),
            json!({}),
        ] {
            assert!(id_of(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_fields_accept_numbers_and_digit_strings() {
        let object =
            json!({"a": 1734537437, "b": "1734537437", "c": 1.7e9, "d": "soon", "e": null});
        assert_eq!(unix_field(&object, "a"), Some(1_734_537_437));
        assert_eq!(unix_field(&object, "b"), Some(1_734_537_437));
        assert_eq!(unix_field(&object, "c"), Some(1_700_000_000));
        assert_eq!(unix_field(&object, "d"), None);
        assert_eq!(unix_field(&object, "e"), None);
        assert_eq!(unix_field(&object, "f"), None);
    }

    #[test]
    fn only_contacts_are_archived() {
        let contact =
            json!({"type": "contact", "id": "c1", "created_at": 1700000000, "archived": true});
        let record = record(Kind::Contact, contact.clone()).expect("record");
        assert_eq!(record.collection_key, "intercom_contact");
        assert_eq!(record.external_id, "c1");
        assert_eq!(record.created, Some(1_700_000_000));
        assert!(record.archived);
        assert_eq!(record.payload, contact);

        let company = json!({"type": "company", "id": "co1", "archived": true});
        assert!(
            !super::record(Kind::Company, company)
                .expect("record")
                .archived
        );
        let live = json!({"type": "contact", "id": "c2", "archived": false});
        assert!(!super::record(Kind::Contact, live).expect("record").archived);
        assert!(super::record(Kind::Admin, json!([1])).is_err());
    }

    #[test]
    fn parts_carry_their_conversation_id() {
        let conversation = json!({
            "type": "conversation",
            "id": "503",
            "created_at": 1734537511,
            "conversation_parts": {
                "type": "conversation_part.list",
                "conversation_parts": [
                    {"type": "conversation_part", "id": 1, "part_type": "comment", "created_at": 1663597223},
                    {"type": "conversation_part", "id": "2", "part_type": "note", "created_at": 1740141842},
                ],
                "total_count": 2,
            },
        });
        let change = conversation_change(conversation.clone()).expect("change");
        assert_eq!(change.resource, "conversation");
        assert_eq!(change.record.external_id, "503");
        assert_eq!(
            change.record.payload, conversation,
            "the conversation as received"
        );
        let parts = change.children.expect("parts");
        assert_eq!(parts.collection_key, "intercom_conversation_part");
        assert_eq!(parts.parent_field, "conversation_id");
        let ids: Vec<&str> = parts
            .records
            .iter()
            .map(|r| r.external_id.as_str())
            .collect();
        assert_eq!(ids, ["1", "2"]);
        for part in &parts.records {
            assert_eq!(part.payload.value()["conversation_id"], "503");
            assert_eq!(part.collection_key, "intercom_conversation_part");
        }
        assert_eq!(parts.records[0].created, Some(1_663_597_223));
    }

    #[test]
    fn a_conversation_without_its_part_list_is_malformed() {
        for conversation in [
            json!({"id": "1"}),
            json!({"id": "1", "conversation_parts": {"total_count": 0}}),
            json!({"id": "1", "conversation_parts": {"conversation_parts": [{"body": "x"}]}}),
            json!({"id": "1", "conversation_parts": {"conversation_parts": ["x"]}}),
        ] {
            assert!(
                conversation_records(conversation.clone()).is_err(),
                "{conversation}"
            );
        }
        let empty = json!({"id": "1", "conversation_parts": {"conversation_parts": []}});
        assert_eq!(conversation_records(empty).expect("records").1, vec![]);
    }

    #[test]
    fn a_conversation_served_in_part_has_an_incomplete_part_set() {
        let conversation = |served: usize, counts: Value| {
            let parts: Vec<Value> = (0..served)
                .map(|i| json!({"type": "conversation_part", "id": i.to_string()}))
                .collect();
            let mut c = json!({"type": "conversation", "id": "1",
                               "conversation_parts": {"conversation_parts": parts}});
            if let Some(total) = counts.get("total_count") {
                c["conversation_parts"]["total_count"] = total.clone();
            }
            if let Some(n) = counts.get("count_conversation_parts") {
                c["statistics"] = json!({"count_conversation_parts": n});
            }
            conversation_change(c).unwrap().children.unwrap().complete
        };
        assert!(conversation(
            3,
            json!({"total_count": 3, "count_conversation_parts": 3})
        ));
        assert!(conversation(499, json!({})));
        assert!(
            !conversation(500, json!({"total_count": 500})),
            "the limit: maybe more"
        );
        assert!(!conversation(3, json!({"total_count": 7})));
        assert!(!conversation(3, json!({"count_conversation_parts": 4})));
    }

    #[test]
    fn deletions_are_tombstones_and_take_parts_along() {
        let change = gone(Kind::Contact, "c9");
        assert!(change.deleted);
        assert_eq!(change.record.payload, json!({"id": "c9", "deleted": true}));
        assert_eq!(change.children, None);

        let change = gone(Kind::Conversation, "77");
        let parts = change.children.expect("an empty part set");
        assert!(parts.records.is_empty());
        assert_eq!(parts.parent_field, "conversation_id");
    }
}
