//! Tests of webhook parsing: every mapped topic, the ignored ones, and malformed deliveries.

use serde_json::{json, Value};
use supasaasy_connector::Change;

use super::*;

const NOTIFIED: i64 = 1_734_600_000;
const UPDATED: i64 = 1_734_599_990;

fn delivery(topic: &str, item: Value) -> Vec<u8> {
    json!({
        "type": "notification_event",
        "app_id": "abc123",
        "id": "notif_7f3a",
        "topic": topic,
        "data": {"type": "notification_event_data", "item": item},
        "created_at": NOTIFIED,
        "delivery_attempts": 1,
        "first_sent_at": NOTIFIED,
    })
    .to_string()
    .into_bytes()
}

fn contact() -> Value {
    json!({"type": "contact", "id": "6762f0dd", "role": "user", "email": "a@example.com", "created_at": 1_734_000_000, "updated_at": UPDATED, "archived": false})
}

fn company() -> Value {
    json!({"type": "company", "id": "6762f097", "company_id": "acme", "created_at": 1_734_000_000, "updated_at": UPDATED})
}

fn conversation() -> Value {
    json!({"type": "conversation", "id": "503", "created_at": 1_734_000_000, "updated_at": UPDATED,
           "conversation_parts": {"type": "conversation_part.list", "conversation_parts": [{"id": "9", "part_type": "comment"}], "total_count": 9}})
}

fn parse(topic: &str, item: Value) -> Event {
    parse_notification(&delivery(topic, item)).unwrap_or_else(|err| panic!("{topic}: {err}"))
}

fn only_change(event: &Event) -> &Change {
    match event.changes.as_slice() {
        [change] => change,
        other => panic!("{}: expected one change, got {other:?}", event.event_type),
    }
}

#[test]
fn company_topics_upsert_and_delete() {
    for topic in ["company.created", "company.updated"] {
        let event = parse(topic, company());
        assert_eq!(event.id, "notif_7f3a");
        assert_eq!(event.event_type, topic);
        assert_eq!(event.created, UPDATED);
        assert!(!event.ignored);
        let change = only_change(&event);
        assert_eq!(change.resource, "company");
        assert_eq!(change.record.collection_key, "intercom_company");
        assert_eq!(change.record.external_id, "6762f097");
        assert_eq!(change.record.payload, company());
        assert!(!change.deleted);
    }
    let event = parse(
        "company.deleted",
        json!({"type": "company", "id": "6762f097"}),
    );
    assert_eq!(event.created, NOTIFIED);
    let change = only_change(&event);
    assert!(change.deleted);
    assert_eq!(change.record.external_id, "6762f097");
    assert_eq!(change.children, None);
}

#[test]
fn contact_topics_upsert_the_contact() {
    for topic in [
        "contact.user.created",
        "contact.user.updated",
        "contact.lead.created",
        "contact.lead.updated",
        "contact.lead.signed_up",
        "contact.archived",
        "contact.unarchived",
        "contact.subscribed",
        "contact.unsubscribed",
        "contact.email.updated",
        "contact.merged",
    ] {
        let event = parse(topic, contact());
        assert!(!event.ignored, "{topic}");
        assert_eq!(event.created, UPDATED, "{topic}");
        let change = only_change(&event);
        assert_eq!(change.resource, "contact", "{topic}");
        assert_eq!(change.record.collection_key, "intercom_contact");
        assert_eq!(change.record.external_id, "6762f0dd");
        assert!(!change.deleted, "{topic}");
        assert_eq!(change.children, None);
    }
    let mut archived = contact();
    archived["archived"] = json!(true);
    assert!(
        only_change(&parse("contact.archived", archived))
            .record
            .archived
    );
}

#[test]
fn contact_deletions_are_tombstones() {
    for topic in [
        "contact.user.deleted",
        "contact.lead.deleted",
        "contact.deleted",
    ] {
        let event = parse(topic, json!({"type": "contact", "id": "6762f0dd"}));
        assert_eq!(event.created, NOTIFIED, "{topic}");
        let change = only_change(&event);
        assert!(change.deleted, "{topic}");
        assert_eq!(change.resource, "contact");
        assert_eq!(change.record.external_id, "6762f0dd");
        assert_eq!(
            change.record.payload,
            json!({"type": "contact", "id": "6762f0dd"})
        );
    }
}

#[test]
fn items_that_carry_a_contact_upsert_it() {
    let tag = json!({"type": "contact_tag", "created_at": NOTIFIED, "tag": {"type": "tag", "id": "17", "name": "vip"}, "contact": contact()});
    for topic in [
        "contact.tag.created",
        "contact.tag.deleted",
        "contact.user.tag.created",
    ] {
        let event = parse(topic, tag.clone());
        let change = only_change(&event);
        assert_eq!(change.record.external_id, "6762f0dd", "{topic}");
        assert_eq!(change.record.payload, contact());
        assert!(
            !change.deleted,
            "{topic}: a tag removed is not the contact removed"
        );
        assert_eq!(event.created, UPDATED);
    }
    // An item that is not a contact and carries none: nothing to write.
    let event = parse(
        "contact.tag.created",
        json!({"type": "contact_tag", "tag": {"id": "17"}}),
    );
    assert!(event.ignored && event.changes.is_empty());
    let event = parse(
        "contact.subscribed",
        json!({"type": "subscription", "id": "s1"}),
    );
    assert!(event.ignored);
}

#[test]
fn conversation_topics_upsert_without_parts() {
    for topic in [
        "conversation.user.created",
        "conversation.user.replied",
        "conversation.admin.replied",
        "conversation.admin.single.created",
        "conversation.admin.assigned",
        "conversation.admin.closed",
        "conversation.admin.opened",
        "conversation.admin.snoozed",
        "conversation.admin.unsnoozed",
        "conversation.admin.noted",
        "conversation.rating.added",
        "conversation.priority.updated",
        "conversation.contact.attached",
        "conversation.contact.detached",
        "conversation.read",
    ] {
        let event = parse(topic, conversation());
        assert!(!event.ignored, "{topic}");
        assert_eq!(event.created, UPDATED);
        let change = only_change(&event);
        assert_eq!(change.resource, "conversation", "{topic}");
        assert_eq!(change.record.collection_key, "intercom_conversation");
        assert_eq!(change.record.external_id, "503");
        assert!(!change.deleted);
        assert_eq!(
            change.children, None,
            "{topic}: the daemon fetches the parts"
        );
    }
}

#[test]
fn a_deleted_conversation_takes_its_parts() {
    let event = parse(
        "conversation.deleted",
        json!({"type": "conversation", "id": "503"}),
    );
    let change = only_change(&event);
    assert!(change.deleted);
    assert_eq!(change.record.external_id, "503");
    let parts = change.children.as_ref().expect("an empty part set");
    assert!(parts.records.is_empty());
    assert_eq!(parts.collection_key, "intercom_conversation_part");
}

#[test]
fn other_topics_are_ignored() {
    for (topic, item) in [
        ("ping", json!({"type": "ping", "message": "something"})),
        ("user.created", json!({"type": "user", "id": "u1"})),
        (
            "company.contact.attached",
            json!({"type": "company", "id": "c"}),
        ),
        (
            "conversation_part.tag.created",
            json!({"type": "conversation_part_tag", "id": "p"}),
        ),
        (
            "conversation.admin.replied",
            json!({"type": "ticket", "id": "t1"}),
        ),
        ("company.updated", json!({"type": "contact", "id": "x"})),
        ("ticket.created", json!({"type": "ticket", "id": "t1"})),
        ("visitor.signed_up", json!({"type": "visitor", "id": "v1"})),
        ("event.created", json!({"type": "event", "id": "e1"})),
    ] {
        let event = parse(topic, item);
        assert!(event.ignored, "{topic}");
        assert!(event.changes.is_empty(), "{topic}");
        assert_eq!(event.event_type, topic);
        assert_eq!(event.id, "notif_7f3a");
        assert_eq!(event.created, NOTIFIED);
    }
}

#[test]
fn a_ping_needs_no_item() {
    let body = br#"{"type":"notification_event","id":"notif_ping","topic":"ping","data":{}}"#;
    let event = parse_notification(body).expect("ping");
    assert!(event.ignored);
    assert_eq!(event.created, 0, "no time given");
}

#[test]
fn malformed_deliveries_are_refused() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not JSON"),
        (b"".to_vec(), "not JSON"),
        (b"[1]".to_vec(), "no id"),
        (br#"{"topic": "contact.user.created"}"#.to_vec(), "no id"),
        (br#"{"id": 7, "topic": "ping"}"#.to_vec(), "no id"),
        (br#"{"id": "notif_1"}"#.to_vec(), "no topic"),
        (br#"{"id": "notif_1", "topic": ""}"#.to_vec(), "no topic"),
        (
            br#"{"id": "notif_1", "topic": "contact.user.created"}"#.to_vec(),
            "data.item",
        ),
        (
            br#"{"id": "notif_1", "topic": "contact.user.created", "data": {"item": null}}"#
                .to_vec(),
            "data.item",
        ),
        (
            br#"{"id": "notif_1", "topic": "company.updated", "data": {"item": {"type": "company"}}}"#
                .to_vec(),
            "no id",
        ),
        (
            br#"{"id": "notif_1", "topic": "company.updated", "data": {"item": {"type": "company", "id": "c1"}}}"#
                .to_vec(),
            "neither",
        ),
    ];
    for (body, expected) in cases {
        match parse_notification(&body) {
            Err(WebhookError::Malformed(why)) => {
                assert!(
                    why.contains(expected),
                    "{}: {why}",
                    String::from_utf8_lossy(&body)
                );
            }
            other => panic!("{}: {other:?}", String::from_utf8_lossy(&body)),
        }
    }
}

#[test]
fn an_item_without_updated_at_takes_the_notification_time() {
    let event = parse("company.updated", json!({"type": "company", "id": "c1"}));
    assert_eq!(event.created, NOTIFIED);
    let event = parse(
        "contact.user.created",
        json!({"type": "contact", "id": "u1", "updated_at": "1734599000"}),
    );
    assert_eq!(event.created, 1_734_599_000);
}

#[test]
fn an_item_whose_id_no_request_can_name_is_ignored_with_the_reason() {
    for id in ["../../admins", "1?x=y", "é"] {
        let mut item = conversation();
        item["id"] = json!(id);
        let event = parse("conversation.admin.replied", item);
        assert!(
            event.ignored && event.changes.is_empty(),
            "{id:?}: {event:?}"
        );
        let reason = event.ignored_reason.unwrap_or_default();
        assert!(
            reason.contains("not an Intercom object id"),
            "{id:?}: {reason}"
        );
    }
}
