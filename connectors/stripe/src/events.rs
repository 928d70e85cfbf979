//! Stripe events, from a webhook delivery or `/v1/events`, without any I/O: the query of an events
//! page, and how one event becomes changes.
//!
//! Invariants:
//!
//! - an event is `{"id", "object": "event", "type", "created", "data": {"object": {...}}}`; one
//!   without `id`, `type`, `created` or `data.object` is [`Malformed`], whatever its type;
//! - a type maps to the one resource of [`TABLE`](crate::resources::TABLE) whose row lists it,
//!   exactly; an unmapped type gives no change and is marked ignored;
//! - a mapped type whose `data.object` is not the object the row promises (another `object`, no
//!   id) is ignored too, with the reason, and never written into the wrong collection;
//! - a mapped type gives one [`Change`] whose record is built as a listing builds it (same
//!   collection, same `archived` rule), a tombstone for the row's `deleted_by` types only
//!   (`customer.subscription.deleted` means ended, not gone), then one change per object it
//!   carries whole (a customer's discount);
//! - a parent's change carries its children as a [`ChildSet`] only when the embedded list is
//!   complete; when Stripe truncated it, `children` is `None` and the parent must be fetched again
//!   (`fetch_object`) for its full set;
//! - a Connect event names its connected account (top-level `account`, an `acct_` id or the event
//!   is [`Malformed`]); `account.application.deauthorized` is not ignored: it says the platform
//!   lost that account.

use serde_json::Value;
use supasaasy_connector::segment::path_segment;
use supasaasy_connector::{Change, ChildSet, Event, EventWindow};

use crate::listing::{self, Embedded, Malformed, PAGE_LIMIT};
use crate::resources::{Child, StripeResource};

/// The Connect event that says a connected account took the platform's access away.
pub(crate) const DEAUTHORIZED: &str = "account.application.deauthorized";

/// A Stripe account id (`acct_1032D82eZvKYlo2C`).
pub fn is_account_id(id: &str) -> bool {
    id.len() > 5
        && id.len() <= 255
        && id.starts_with("acct_")
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The query of one page of `/v1/events`: the window, the resource's types, the cursor.
pub(crate) fn events_query(
    types: &[&str],
    cursor: Option<&str>,
    window: &EventWindow,
) -> Vec<(&'static str, String)> {
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
/// [`Malformed`] when the event lacks `id`, `type`, `created` or `data.object`, or is not an
/// `event`. An object that is not what the type promises is not an error: the event is ignored
/// with the reason.
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
    // A Connect event names the connected account it happened in; anything but an account id
    // there is not an event to trust.
    let account = match event.get("account") {
        None | Some(Value::Null) => None,
        Some(Value::String(account)) if is_account_id(account) => Some(account.clone()),
        Some(_) => {
            return Err(Malformed(
                "the event's \"account\" is not an account id".into(),
            ))
        }
    };
    let deauthorizes = event_type == DEAUTHORIZED && account.is_some();
    let mut parsed = Event {
        id,
        event_type,
        created,
        changes: Vec::new(),
        ignored: !deauthorizes,
        ignored_reason: None,
        account,
        livemode: event.get("livemode").and_then(Value::as_bool),
        deauthorizes,
    };
    let Some(row) = StripeResource::of_event(&parsed.event_type) else {
        return Ok(parsed);
    };
    let deleted = row.deleted_by.contains(&parsed.event_type.as_str());
    let changes = object_changes(row, object, deleted).and_then(|changes| {
        // An id no request can name could never be fetched to settle its order.
        match changes
            .iter()
            .find(|c| path_segment(&c.record.external_id).is_none())
        {
            Some(c) => Err(Malformed(format!(
                "{:?} is not an id Stripe serves",
                c.record.external_id.chars().take(80).collect::<String>()
            ))),
            None => Ok(changes),
        }
    });
    match changes {
        Ok(changes) => {
            parsed.changes = changes;
            parsed.ignored = false;
        }
        Err(Malformed(reason)) => {
            parsed.ignored_reason = Some(format!("{}: {reason}", parsed.event_type));
        }
    }
    Ok(parsed)
}

/// The change an object of `row` makes, from an event or a fetch, then the changes of the
/// objects it carries whole. A parent brings its children when its embedded list is complete.
///
/// # Errors
///
/// [`Malformed`] when the object is of another kind than the row's, or it or one of its children
/// has no string `id`.
pub(crate) fn object_changes(
    row: &'static StripeResource,
    object: Value,
    deleted: bool,
) -> Result<Vec<Change>, Malformed> {
    if let Some(kind) = object.get("object") {
        if kind.as_str() != Some(row.object) {
            return Err(Malformed(format!(
                "expected a {}, got an object of kind {kind}",
                row.object
            )));
        }
    }
    let parent_id = listing::object_id(&object)?.to_owned();
    let children = match row.child.as_ref().filter(|_| !deleted) {
        Some(child) => match listing::embedded_children(child, &object) {
            Embedded::Complete(items) => Some(child_set(child, &parent_id, items)?),
            Embedded::Truncated => None,
        },
        None => None,
    };
    let carried = if deleted {
        Vec::new()
    } else {
        listing::embedded_records(row, &object)?
    };
    let record = listing::object_record(row, object)?;
    let mut changes = vec![Change {
        resource: row.name,
        record,
        deleted,
        children,
    }];
    for record in carried {
        let resource =
            StripeResource::of_collection(record.collection_key).map_or(row.name, |r| r.name);
        changes.push(Change {
            resource,
            record,
            deleted: false,
            children: None,
        });
    }
    Ok(changes)
}

/// The complete set of a parent's children.
///
/// # Errors
///
/// [`Malformed`] when a child has no string `id`.
pub(crate) fn child_set(
    child: &Child,
    parent_id: &str,
    items: Vec<Value>,
) -> Result<ChildSet, Malformed> {
    let records = items
        .into_iter()
        .map(|item| listing::child_record(child, parent_id, item))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ChildSet {
        collection_key: child.collection_key,
        parent_field: child.parent_field,
        records,
        complete: true,
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
    use crate::resources::TABLE;

    const FIXTURES: &str = include_str!("../../../testkit/data/stripe_fixtures3.json");

    fn fixture(object: &str) -> Value {
        let all: Value = serde_json::from_str(FIXTURES).expect("fixtures parse");
        all["resources"][object].clone()
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
    fn a_connect_event_names_its_account_and_mode() {
        let mut value = event("customer.updated", fixture("customer"));
        value["account"] = json!("acct_1TENANT");
        value["livemode"] = json!(true);
        let parsed = parse_event(value).expect("event");
        assert_eq!(parsed.account.as_deref(), Some("acct_1TENANT"));
        assert_eq!(parsed.livemode, Some(true));
        assert!(!parsed.deauthorizes && !parsed.ignored);
        assert_eq!(parsed.changes[0].record.external_id, "cus_QXg1o8vcGmoR32");

        let own = parse_event(event("customer.updated", fixture("customer"))).expect("event");
        assert_eq!((own.account, own.livemode), (None, Some(false)));

        for bad in [
            json!(42),
            json!("cus_1"),
            json!("acct_"),
            json!("acct_1/../x"),
        ] {
            let mut value = event("customer.updated", fixture("customer"));
            value["account"] = bad.clone();
            assert!(parse_event(value).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_deauthorization_is_not_ignored_and_changes_no_row() {
        let application = json!({"id": "ca_1", "object": "application", "name": "Platform"});
        let mut value = event(DEAUTHORIZED, application.clone());
        value["account"] = json!("acct_1GONE");
        let parsed = parse_event(value).expect("event");
        assert!(parsed.deauthorizes && !parsed.ignored);
        assert!(parsed.changes.is_empty());
        // Without an account it says nothing to act on.
        let parsed = parse_event(event(DEAUTHORIZED, application)).expect("event");
        assert!(!parsed.deauthorizes && parsed.ignored);
    }

    #[test]
    fn events_query_carries_window_types_and_cursor() {
        let window = EventWindow {
            created_gt: 1_700_000_000,
            created_lte: 1_700_086_340,
        };
        let types = StripeResource::named("customer").expect("customer").events;
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
    }

    #[test]
    fn every_event_type_of_every_resource_lands_in_its_collection() {
        for row in TABLE {
            let object = fixture(row.object);
            for t in row.events {
                let parsed = parse_event(event(t, object.clone())).expect(t);
                assert_eq!(parsed.ignored_reason, None, "{t}");
                let change = &parsed.changes[0];
                assert!(!parsed.ignored, "{t}");
                assert_eq!(change.resource, row.name, "{t}");
                assert_eq!(change.record.collection_key, row.collection_key, "{t}");
                assert_eq!(change.deleted, row.deleted_by.contains(t), "{t}");
                assert_eq!(change.record.payload, object, "{t}");
                assert_eq!(
                    change.children.is_some(),
                    row.child.is_some() && !change.deleted,
                    "{t}"
                );
            }
        }
    }

    #[test]
    fn customer_events_upsert_and_delete() {
        let mut customer = fixture("customer");
        customer["discount"] = Value::Null;
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
            assert_eq!(change.record.external_id, "cus_QXg1o8vcGmoR32");
            assert_eq!(change.record.created, Some(1_234_567_890));
        }
    }

    #[test]
    fn a_customer_event_carries_its_discount() {
        let mut customer = fixture("customer");
        customer["discount"] = fixture("discount");
        let parsed = parse_event(event("customer.updated", customer)).expect("event");
        assert_eq!(parsed.changes.len(), 2);
        assert_eq!(parsed.changes[1].resource, "discount");
        assert_eq!(parsed.changes[1].record.collection_key, "stripe_discount");
        assert!(!parsed.changes[1].deleted);
        // A deleted customer's stub carries nothing.
        let mut stub = fixture("customer");
        stub["discount"] = fixture("discount");
        let parsed = parse_event(event("customer.deleted", stub)).expect("event");
        assert_eq!(parsed.changes.len(), 1);
    }

    #[test]
    fn archivable_objects_follow_the_listing_rule() {
        for row in TABLE.iter().filter(|r| r.archivable) {
            let mut object = fixture(row.object);
            object["active"] = json!(false);
            let t = row.events[0];
            let parsed = parse_event(event(t, object)).expect(t);
            assert!(parsed.changes[0].record.archived, "{t}");
        }
    }

    #[test]
    fn ended_subscriptions_and_detached_payment_methods_stay() {
        let mut subscription = fixture("subscription");
        subscription["status"] = json!("canceled");
        let parsed =
            parse_event(event("customer.subscription.deleted", subscription)).expect("event");
        assert!(!only_change(&parsed).deleted);
        let parsed = parse_event(event("payment_method.detached", fixture("payment_method")))
            .expect("event");
        assert!(!only_change(&parsed).deleted);
    }

    #[test]
    fn deletions_of_deletable_objects_tombstone() {
        for (t, object) in [
            ("invoice.deleted", "deleted_invoice"),
            ("coupon.deleted", "deleted_coupon"),
            ("invoiceitem.deleted", "deleted_invoiceitem"),
            ("customer.tax_id.deleted", "deleted_tax_id"),
        ] {
            let parsed = parse_event(event(t, fixture(object))).expect(t);
            let change = only_change(&parsed);
            assert!(change.deleted, "{t}");
            assert_eq!(change.children, None, "{t}");
        }
        let mut discount = fixture("discount");
        discount["deleted"] = json!(true);
        let parsed = parse_event(event("customer.discount.deleted", discount)).expect("event");
        assert!(only_change(&parsed).deleted);
    }

    #[test]
    fn parents_carry_their_complete_children() {
        for (t, object) in [
            ("customer.subscription.updated", "subscription"),
            ("invoice.paid", "invoice"),
            ("credit_note.created", "credit_note"),
        ] {
            let parent = fixture(object);
            let row = StripeResource::of_event(t).expect(t);
            let child = row.child.expect("child");
            let parsed = parse_event(event(t, parent.clone())).expect(t);
            let set = only_change(&parsed)
                .children
                .as_ref()
                .expect("complete children");
            assert_eq!(set.collection_key, child.collection_key);
            assert_eq!(set.parent_field, child.parent_field);
            assert_eq!(
                set.records.len(),
                parent[child.field]["data"].as_array().expect("data").len()
            );
            for record in &set.records {
                assert_eq!(
                    record.payload.value()[child.parent_field],
                    parent["id"],
                    "{t}"
                );
            }
            let mut truncated = parent.clone();
            truncated[child.field]["has_more"] = json!(true);
            let parsed = parse_event(event(t, truncated)).expect(t);
            assert_eq!(only_change(&parsed).children, None, "{t}");
        }
    }

    #[test]
    fn unmapped_types_are_ignored_without_a_reason() {
        for t in [
            "invoice.upcoming",
            "customer.source.updated",
            "ping",
            "customer.subscription.unknown_future_type",
            "issuing_card.created",
        ] {
            let parsed = parse_event(event(t, json!({"id": "x_1", "object": "other"}))).expect(t);
            assert!(parsed.ignored, "{t}");
            assert!(parsed.changes.is_empty(), "{t}");
            assert_eq!(parsed.ignored_reason, None, "{t}");
        }
        // invoice.upcoming carries an invoice without an id.
        let mut upcoming = fixture("invoice");
        upcoming.as_object_mut().expect("object").remove("id");
        assert!(
            parse_event(event("invoice.upcoming", upcoming))
                .expect("event")
                .ignored
        );
    }

    #[test]
    fn an_object_that_is_not_what_the_type_promises_is_ignored_with_the_reason() {
        for (t, object) in [
            ("customer.updated", "invoice"),
            ("charge.refund.updated", "charge"),
            ("charge.dispute.created", "charge"),
            ("customer.discount.created", "customer"),
            ("customer.tax_id.created", "customer"),
            ("customer.subscription.updated", "customer"),
        ] {
            let parsed = parse_event(event(t, fixture(object))).expect(t);
            assert!(parsed.ignored && parsed.changes.is_empty(), "{t}");
            let reason = parsed.ignored_reason.expect(t);
            assert!(reason.contains(t) && reason.contains(object), "{reason}");
        }
        // The exact types the contract names land where they belong.
        for (t, object, resource) in [
            ("charge.refund.updated", "refund", "refund"),
            ("charge.dispute.created", "dispute", "dispute"),
            ("customer.discount.created", "discount", "discount"),
            ("customer.tax_id.created", "tax_id", "tax_id"),
        ] {
            let parsed = parse_event(event(t, fixture(object))).expect(t);
            assert_eq!(only_change(&parsed).resource, resource, "{t}");
        }
        // No id, or a child without one: ignored with the reason too.
        let parsed = parse_event(event("charge.updated", json!({"object": "charge"}))).expect("ev");
        assert!(parsed.ignored && parsed.ignored_reason.is_some());
        let mut items = fixture("subscription");
        items["items"]["data"][0]
            .as_object_mut()
            .expect("item")
            .remove("id");
        let parsed = parse_event(event("customer.subscription.updated", items)).expect("ev");
        assert!(parsed.ignored && parsed.ignored_reason.is_some());
        // A bare object without `object` is taken at the type's word.
        let parsed = parse_event(event("customer.created", json!({"id": "cus_9"}))).expect("event");
        assert_eq!(only_change(&parsed).record.external_id, "cus_9");
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
        ignored["type"] = json!("invoice.upcoming");
        ignored.as_object_mut().expect("object").remove("created");
        assert!(parse_event(ignored).is_err());
        assert!(parse_event(json!([1, 2])).is_err());
    }
}
