//! Stripe events, from a webhook delivery or `/v1/events`, without any I/O: which event types
//! change which resource, the query of an events page, and how one event becomes changes.
//!
//! Invariants:
//!
//! - an event is `{"id", "object": "event", "type", "created", "data": {"object": {...}}}`; one
//!   without `id`, `type`, `created` or `data.object` is [`Malformed`], whatever its type;
//! - a mapped type gives exactly one [`Change`] whose record is built as a listing builds it (same
//!   collection, same `archived` rule); an unmapped type gives none and is marked ignored;
//! - `customer.subscription.deleted` means the subscription ended: it is an upsert of a canceled
//!   subscription, never a tombstone;
//! - a subscription change carries its items as a [`ChildSet`] only when the embedded item list is
//!   complete; when Stripe truncated it, `children` is `None` and the subscription must be fetched
//!   again (`fetch_object`) for its full set of items.

use serde_json::Value;
use supasaasy_connector::{Change, ChildSet, Event, EventWindow};

use crate::listing::{self, EmbeddedItems, Endpoint, Malformed, PAGE_LIMIT};
use crate::SUBSCRIPTION_ITEM_COLLECTION;

/// The most `types[]` Stripe accepts in one `/v1/events` request.
pub(crate) const MAX_TYPES_PER_REQUEST: usize = 20;

/// The event types that change each resource, as listed from `/v1/events`.
pub(crate) static EVENT_TYPES: &[(&str, &[&str])] = &[
    (
        "customer",
        &["customer.created", "customer.updated", "customer.deleted"],
    ),
    (
        "product",
        &["product.created", "product.updated", "product.deleted"],
    ),
    (
        "price",
        &["price.created", "price.updated", "price.deleted"],
    ),
    ("plan", &["plan.created", "plan.updated", "plan.deleted"]),
    (
        "subscription",
        &[
            "customer.subscription.created",
            "customer.subscription.updated",
            "customer.subscription.deleted",
            "customer.subscription.paused",
            "customer.subscription.resumed",
            "customer.subscription.pending_update_applied",
            "customer.subscription.pending_update_expired",
            "customer.subscription.trial_will_end",
        ],
    ),
];

/// The event types that change `resource`, `None` for a resource this connector does not sync.
pub(crate) fn event_types(resource: &str) -> Option<&'static [&'static str]> {
    EVENT_TYPES
        .iter()
        .find(|(name, _)| *name == resource)
        .map(|(_, types)| *types)
}

/// The resource an event type changes, `None` when the type is not mapped.
fn resource_of(event_type: &str) -> Option<&'static str> {
    EVENT_TYPES
        .iter()
        .find(|(_, types)| types.contains(&event_type))
        .map(|(name, _)| *name)
}

/// The query of one page of `/v1/events`: the window, the resource's types, the cursor.
pub(crate) fn events_query(
    types: &[&str],
    cursor: Option<&str>,
    window: &EventWindow,
) -> Vec<(&'static str, String)> {
    debug_assert!(types.len() <= MAX_TYPES_PER_REQUEST);
    let mut query = vec![
        ("limit", PAGE_LIMIT.to_owned()),
        ("created[gt]", window.created_gt.to_string()),
        ("created[lte]", window.created_lte.to_string()),
    ];
    query.extend(types.iter().map(|t| ("types[]", (*t).to_owned())));
    if let Some(cursor) = cursor {
        query.push(("starting_after", cursor.to_owned()));
    }
    query
}

/// Reads one event.
///
/// # Errors
///
/// [`Malformed`] when the event lacks `id`, `type`, `created` or `data.object`, is not an
/// `event`, or carries an object the type does not announce (another kind, no `id`, an item
/// without `id`).
pub(crate) fn parse_event(mut event: Value) -> Result<Event, Malformed> {
    if let Some(kind) = event.get("object") {
        if kind.as_str() != Some("event") {
            return Err(Malformed("the body is not a Stripe event".into()));
        }
    }
    let id = required_str(&event, "id")?;
    let event_type = required_str(&event, "type")?;
    let created = event
        .get("created")
        .and_then(Value::as_i64)
        .ok_or_else(|| Malformed("the event has no integer \"created\"".into()))?;
    let object = match event.get_mut("data").and_then(|d| d.get_mut("object")) {
        Some(object @ Value::Object(_)) => object.take(),
        _ => return Err(Malformed("the event has no \"data.object\"".into())),
    };

    let Some(resource) = resource_of(&event_type) else {
        return Ok(Event {
            id,
            event_type,
            created,
            changes: Vec::new(),
            ignored: true,
        });
    };
    let deleted = resource != "subscription" && event_type.ends_with(".deleted");
    let change = object_change(resource, object, deleted)?;
    Ok(Event {
        id,
        event_type,
        created,
        changes: vec![change],
        ignored: false,
    })
}

/// The change an object of `resource` makes, from an event or a fetch. A subscription brings its
/// items when its embedded list is complete.
///
/// # Errors
///
/// [`Malformed`] when the object is of another kind than `resource`, or it or one of its items
/// has no string `id`.
pub(crate) fn object_change(
    resource: &str,
    object: Value,
    deleted: bool,
) -> Result<Change, Malformed> {
    let endpoint =
        Endpoint::find(resource).ok_or_else(|| Malformed(format!("no resource {resource:?}")))?;
    let expected = endpoint.resource.name;
    if let Some(kind) = object.get("object") {
        if kind.as_str() != Some(expected) {
            return Err(Malformed(format!(
                "expected a {expected}, got an object of kind {kind}"
            )));
        }
    }
    let children =
        match (endpoint.subscriptions && !deleted).then(|| listing::embedded_items(&object)) {
            Some(EmbeddedItems::Complete(items)) => Some(item_set(items)?),
            Some(EmbeddedItems::Truncated) | None => None,
        };
    let record = listing::object_record(&endpoint, object)?;
    Ok(Change {
        resource: endpoint.resource.name,
        record,
        deleted,
        children,
    })
}

/// The complete set of a subscription's items.
///
/// # Errors
///
/// [`Malformed`] when an item has no string `id`.
pub(crate) fn item_set(items: Vec<Value>) -> Result<ChildSet, Malformed> {
    let records = items
        .into_iter()
        .map(listing::item_record)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ChildSet {
        collection_key: SUBSCRIPTION_ITEM_COLLECTION,
        parent_field: "subscription",
        records,
    })
}

fn required_str(event: &Value, field: &str) -> Result<String, Malformed> {
    match event.get(field).and_then(Value::as_str) {
        Some(value) if !value.is_empty() => Ok(value.to_owned()),
        _ => Err(Malformed(format!("the event has no string {field:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::RESOURCES;

    const FIXTURES: &str = include_str!("../../../testkit/data/stripe_fixtures3.json");

    fn fixture(resource: &str) -> Value {
        let all: Value = serde_json::from_str(FIXTURES).expect("fixtures parse");
        all["resources"][resource].clone()
    }

    fn event(event_type: &str, object: Value) -> Value {
        json!({"id": "evt_1", "object": "event", "type": event_type, "created": 1_750_000_000,
            "livemode": false, "api_version": "2025-08-27.basil",
            "data": {"object": object, "previous_attributes": {"name": "old"}}})
    }

    fn only_change(event: &Event) -> &Change {
        assert!(!event.ignored, "{}", event.event_type);
        assert_eq!(event.changes.len(), 1, "{}", event.event_type);
        &event.changes[0]
    }

    #[test]
    fn every_resource_has_its_event_types_within_one_request() {
        for resource in RESOURCES {
            let types = event_types(resource.name).expect("types");
            assert!(!types.is_empty(), "{}", resource.name);
            assert!(types.len() <= MAX_TYPES_PER_REQUEST, "{}", resource.name);
            for t in types {
                assert_eq!(resource_of(t), Some(resource.name), "{t}");
            }
        }
        assert_eq!(event_types("subscription").map(<[_]>::len), Some(8));
        assert_eq!(event_types("invoice"), None);
    }

    #[test]
    fn events_query_carries_window_types_and_cursor() {
        let window = EventWindow {
            created_gt: 1_700_000_000,
            created_lte: 1_700_086_340,
        };
        let types = event_types("customer").expect("types");
        let query = events_query(types, Some("evt_9"), &window);
        assert_eq!(
            query,
            vec![
                ("limit", "100".to_owned()),
                ("created[gt]", "1700000000".to_owned()),
                ("created[lte]", "1700086340".to_owned()),
                ("types[]", "customer.created".to_owned()),
                ("types[]", "customer.updated".to_owned()),
                ("types[]", "customer.deleted".to_owned()),
                ("starting_after", "evt_9".to_owned()),
            ]
        );
        let first = events_query(types, None, &window);
        assert!(first.iter().all(|(key, _)| *key != "starting_after"));
        for resource in RESOURCES {
            let types = event_types(resource.name).expect("types");
            let query = events_query(types, None, &window);
            let listed = query.iter().filter(|(key, _)| *key == "types[]").count();
            assert!(listed <= MAX_TYPES_PER_REQUEST, "{}", resource.name);
        }
    }

    #[test]
    fn customer_events_upsert_and_delete() {
        let customer = fixture("customer");
        for (t, deleted) in [
            ("customer.created", false),
            ("customer.updated", false),
            ("customer.deleted", true),
        ] {
            let parsed = parse_event(event(t, customer.clone())).expect(t);
            assert_eq!(parsed.id, "evt_1");
            assert_eq!(parsed.event_type, t);
            assert_eq!(parsed.created, 1_750_000_000);
            let change = only_change(&parsed);
            assert_eq!(change.resource, "customer");
            assert_eq!(change.deleted, deleted, "{t}");
            assert_eq!(change.children, None);
            assert_eq!(change.record.collection_key, "stripe_customer");
            assert_eq!(change.record.external_id, "cus_QXg1o8vcGmoR32");
            assert_eq!(change.record.created, Some(1_234_567_890));
            assert_eq!(change.record.payload, customer);
        }
    }

    #[test]
    fn product_price_and_plan_events_follow_the_listing_rules() {
        for name in ["product", "price", "plan"] {
            let mut object = fixture(name);
            for action in ["created", "updated", "deleted"] {
                let t = format!("{name}.{action}");
                let parsed = parse_event(event(&t, object.clone())).expect(&t);
                let change = only_change(&parsed);
                assert_eq!(change.resource, name);
                assert_eq!(change.deleted, action == "deleted", "{t}");
                assert_eq!(change.record.collection_key, format!("stripe_{name}"));
                assert!(!change.record.archived, "{t}");
            }
            object["active"] = json!(false);
            let parsed = parse_event(event(&format!("{name}.updated"), object)).expect(name);
            assert!(only_change(&parsed).record.archived, "{name}");
        }
    }

    #[test]
    fn every_subscription_event_upserts_with_its_items() {
        let subscription = fixture("subscription");
        for t in event_types("subscription").expect("types") {
            let mut object = subscription.clone();
            if *t == "customer.subscription.deleted" {
                object["status"] = json!("canceled");
            }
            let parsed = parse_event(event(t, object.clone())).expect(t);
            let change = only_change(&parsed);
            assert_eq!(change.resource, "subscription");
            assert!(!change.deleted, "{t} is not a deletion");
            assert_eq!(change.record.collection_key, "stripe_subscription");
            assert_eq!(change.record.payload, object);
            let children = change.children.as_ref().expect("complete items");
            assert_eq!(children.collection_key, "stripe_subscription_item");
            assert_eq!(children.parent_field, "subscription");
            assert_eq!(children.records.len(), 1);
            let item = &children.records[0];
            assert_eq!(item.external_id, "si_QXhVnC2h0Jczwc");
            assert_eq!(item.payload.value()["subscription"], subscription["id"]);
        }
    }

    #[test]
    fn subscription_without_items_has_an_empty_complete_set() {
        let mut object = fixture("subscription");
        object["items"] = json!({"object": "list", "data": [], "has_more": false});
        let parsed = parse_event(event("customer.subscription.updated", object)).expect("event");
        let children = only_change(&parsed).children.as_ref().expect("children");
        assert!(children.records.is_empty());
    }

    #[test]
    fn truncated_items_leave_children_unknown() {
        let mut object = fixture("subscription");
        object["items"]["has_more"] = json!(true);
        let parsed = parse_event(event("customer.subscription.updated", object)).expect("event");
        let change = only_change(&parsed);
        assert!(!change.deleted);
        assert_eq!(change.children, None);

        let mut no_items = fixture("subscription");
        no_items.as_object_mut().expect("object").remove("items");
        let parsed = parse_event(event("customer.subscription.created", no_items)).expect("event");
        assert_eq!(only_change(&parsed).children, None);
    }

    #[test]
    fn unmapped_types_are_ignored() {
        for t in [
            "customer.discount.created",
            "customer.source.updated",
            "customer.tax_id.created",
            "invoice.paid",
            "ping",
            "customer.subscription.unknown_future_type",
        ] {
            let parsed = parse_event(event(t, json!({"id": "x_1", "object": "other"}))).expect(t);
            assert!(parsed.ignored, "{t}");
            assert!(parsed.changes.is_empty(), "{t}");
            assert_eq!(parsed.event_type, t);
        }
    }

    #[test]
    fn incomplete_events_are_malformed() {
        let good = event("customer.updated", fixture("customer"));
        assert!(parse_event(good.clone()).is_ok());
        let without = |path: &[&str]| {
            let mut value = good.clone();
            let (last, parents) = path.split_last().expect("path");
            let mut target = &mut value;
            for key in parents {
                target = &mut target[*key];
            }
            target.as_object_mut().expect("object").remove(*last);
            value
        };
        for path in [
            &["id"][..],
            &["type"],
            &["created"],
            &["data"],
            &["data", "object"],
            &["data", "object", "id"],
        ] {
            assert!(parse_event(without(path)).is_err(), "{path:?}");
        }
        let mut wrong = good.clone();
        wrong["object"] = json!("list");
        assert!(parse_event(wrong).is_err());
        let mut text_created = good.clone();
        text_created["created"] = json!("1750000000");
        assert!(parse_event(text_created).is_err());
        let mut empty_id = good.clone();
        empty_id["id"] = json!("");
        assert!(parse_event(empty_id).is_err());
        let mut not_object = good.clone();
        not_object["data"]["object"] = json!("cus_1");
        assert!(parse_event(not_object).is_err());
        // Unmapped types still need the envelope.
        let mut ignored = good.clone();
        ignored["type"] = json!("invoice.paid");
        ignored.as_object_mut().expect("object").remove("created");
        assert!(parse_event(ignored).is_err());
        assert!(parse_event(json!([1, 2])).is_err());
    }

    #[test]
    fn an_object_of_another_kind_is_malformed() {
        let parsed = parse_event(event("customer.updated", fixture("invoice")));
        assert!(parsed.is_err());
        let mut items = fixture("subscription");
        items["items"]["data"][0]
            .as_object_mut()
            .expect("item")
            .remove("id");
        assert!(parse_event(event("customer.subscription.updated", items)).is_err());
        // A bare object without `object` is taken at the type's word.
        let parsed = parse_event(event("customer.created", json!({"id": "cus_9"}))).expect("event");
        assert_eq!(only_change(&parsed).record.external_id, "cus_9");
    }
}
