//! Reading a verified Intercom webhook delivery: a `notification_event` whose `topic` says what
//! happened to the object in `data.item`.
//!
//! Mapping: `company.created|updated` upserts the company and `company.deleted` tombstones it; a
//! `contact.*` topic whose item is a contact (or carries one in `item.contact`, as `contact_tag`
//! items do) upserts it, and `contact.deleted`, `contact.user.deleted` and `contact.lead.deleted`
//! tombstone it; a `conversation.*` topic whose item is a conversation upserts it without children
//! (a delivery holds only some parts, so the daemon fetches the conversation whole) and
//! `conversation.deleted` tombstones it with all its parts. `ping` and every other topic are
//! ignored: acknowledged, never an error, since Intercom would deliver again for days.
//!
//! An event's time (the version of the state it carries) is the object's `updated_at`, as for
//! searches, and the notification's `created_at` when the object has none; a deletion takes the
//! notification's `created_at` first (when the object was deleted).

use serde_json::Value;
use supasaasy_connector::{Event, WebhookError};

use crate::listing;
use crate::objects::{self, Kind, Malformed};

/// Contact topics that mean the contact is gone.
const CONTACT_DELETIONS: &[&str] = &[
    "contact.deleted",
    "contact.user.deleted",
    "contact.lead.deleted",
];

/// What a topic does to the mirror.
#[derive(Debug, Clone, PartialEq)]
enum Mapping {
    /// Write this object of this kind.
    Upsert(Kind, Value),
    /// Tombstone this object of this kind.
    Delete(Kind, Value),
    /// Nothing the mirror holds.
    Ignore,
}

/// Parses a verified delivery into an event.
///
/// # Errors
///
/// [`WebhookError::Malformed`] when the body is not a JSON object with a string `id` and `topic`
/// and (but for `ping`) an object `data.item`, or when a mapped item has no id or no time.
pub(crate) fn parse_notification(body: &[u8]) -> Result<Event, WebhookError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|err| WebhookError::Malformed(format!("the body is not JSON: {err}")))?;
    let text = |field: &str| {
        value
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| WebhookError::Malformed(format!("the notification has no {field}")))
    };
    let id = text("id")?;
    let topic = text("topic")?;
    let notified = objects::unix_field(&value, "created_at");
    let ignored = |created: Option<i64>| Event {
        id: id.clone(),
        event_type: topic.clone(),
        created: created.or(notified).unwrap_or(0),
        changes: Vec::new(),
        ignored: true,
        ignored_reason: None,
        account: None,
        livemode: None,
        deauthorizes: false,
    };
    if topic == "ping" {
        return Ok(ignored(None));
    }
    let item = match value.get("data").and_then(|data| data.get("item")) {
        Some(item @ Value::Object(_)) => item.clone(),
        _ => {
            return Err(WebhookError::Malformed(
                "the notification has no data.item object".into(),
            ))
        }
    };

    let (created, change) = match map_topic(&topic, item) {
        Mapping::Ignore => return Ok(ignored(None)),
        Mapping::Upsert(kind, object) => {
            let created = objects::unix_field(&object, "updated_at").or(notified);
            (created, objects::upsert(kind, object))
        }
        Mapping::Delete(kind, object) => {
            let created = notified.or_else(|| objects::unix_field(&object, "updated_at"));
            (
                created,
                objects::id_of(&object).map(|id| objects::deletion(kind, id, object)),
            )
        }
    };
    let change = change.map_err(|Malformed(why)| {
        WebhookError::Malformed(format!("the {topic} notification's item: {why}"))
    })?;
    let created = created.ok_or_else(|| {
        WebhookError::Malformed(format!(
            "the {topic} notification says neither created_at nor updated_at"
        ))
    })?;
    // An id no request can name could never be fetched to settle its order: acknowledged and
    // left out, with the reason.
    if let Err(Malformed(why)) = listing::checked_id(&change.record.external_id) {
        let id: String = change.record.external_id.chars().take(80).collect();
        return Ok(Event {
            ignored_reason: Some(format!("{topic}: the item's id {id:?} is {why}")),
            ..ignored(Some(created))
        });
    }
    Ok(Event {
        id,
        event_type: topic,
        created,
        changes: vec![change],
        ignored: false,
        ignored_reason: None,
        account: None,
        livemode: None,
        deauthorizes: false,
    })
}

/// What `topic` with `item` does to the mirror.
fn map_topic(topic: &str, item: Value) -> Mapping {
    match topic {
        "company.created" | "company.updated" if is_a(&item, "company") => {
            Mapping::Upsert(Kind::Company, item)
        }
        "company.deleted" => Mapping::Delete(Kind::Company, item),
        "conversation.deleted" => Mapping::Delete(Kind::Conversation, item),
        _ if CONTACT_DELETIONS.contains(&topic) => match contact_of(item) {
            Some(contact) => Mapping::Delete(Kind::Contact, contact),
            None => Mapping::Ignore,
        },
        _ if topic.starts_with("contact.") => match contact_of(item) {
            Some(contact) => Mapping::Upsert(Kind::Contact, contact),
            None => Mapping::Ignore,
        },
        _ if topic.starts_with("conversation.") && is_a(&item, "conversation") => {
            Mapping::Upsert(Kind::Conversation, item)
        }
        _ => Mapping::Ignore,
    }
}

/// The contact an item is or carries: the item itself when it is a contact, else `item.contact`.
fn contact_of(mut item: Value) -> Option<Value> {
    if is_a(&item, "contact") {
        return Some(item);
    }
    match item.get_mut("contact").map(Value::take) {
        Some(contact @ Value::Object(_)) if is_a(&contact, "contact") => Some(contact),
        _ => None,
    }
}

/// The item is an object of Intercom type `kind`; an item that does not say its type is taken
/// at its topic's word.
fn is_a(item: &Value, kind: &str) -> bool {
    match item.get("type") {
        Some(Value::String(t)) => t == kind,
        None | Some(Value::Null) => item.is_object(),
        Some(_) => false,
    }
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
