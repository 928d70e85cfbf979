//! What a Stripe list looks like, without any I/O: which endpoint serves a resource, the query of a
//! page, and how the objects of a page become records.
//!
//! Everything here is a pure function of its inputs so the shapes Stripe sends can be tested from
//! fixtures. A response that breaks the list contract (no `data`, an object without an `id`,
//! `has_more` with nothing to continue from) is reported as [`Malformed`], never guessed around: a
//! guessed cursor would end a walk early and silently leave the mirror incomplete.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use supasaasy_connector::{ListOptions, Payload, Record, Resource};

use crate::{RESOURCES, SUBSCRIPTION_ITEM_COLLECTION};

/// The largest page Stripe serves.
pub(crate) const PAGE_LIMIT: &str = "100";

/// Where and how one resource is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The resource as the daemon knows it.
    pub resource: &'static Resource,
    /// The path under `/v1/` (`customers`).
    pub path: &'static str,
    /// Objects carry `active`, and `"active": false` means archived, not gone (products, prices,
    /// plans).
    pub archivable: bool,
    /// Subscriptions: canceled ones are only listed with `status=all`, and each one brings its
    /// items along as child records.
    pub subscriptions: bool,
}

impl Endpoint {
    /// The endpoint of a resource name, `None` when this connector does not sync it.
    pub fn find(name: &str) -> Option<Endpoint> {
        let resource = RESOURCES.iter().find(|r| r.name == name)?;
        let (path, archivable, subscriptions) = match name {
            "customer" => ("customers", false, false),
            "product" => ("products", true, false),
            "price" => ("prices", true, false),
            "plan" => ("plans", true, false),
            "subscription" => ("subscriptions", false, true),
            _ => return None,
        };
        Some(Endpoint {
            resource,
            path,
            archivable,
            subscriptions,
        })
    }
}

/// A response that does not follow Stripe's list contract; the caller adds which app and request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub String);

/// One page of a Stripe list: `{"object": "list", "data": [...], "has_more": bool, ...}`.
#[derive(Debug, Deserialize)]
pub(crate) struct List {
    /// The objects, newest first, as the JSON text Stripe sent: most are stored as they came, and
    /// only the few fields a record needs are read out of them ([`Head`]).
    pub data: Vec<Box<RawValue>>,
    /// More objects follow the last one of `data`.
    pub has_more: bool,
}

/// The fields of a listed object a record needs, read without building the whole object.
#[derive(Debug, Deserialize)]
struct Head {
    id: Option<Value>,
    created: Option<Value>,
    active: Option<Value>,
}

impl Head {
    fn of(object: &RawValue) -> Result<Head, Malformed> {
        serde_json::from_str(object.get())
            .map_err(|err| Malformed(format!("a listed object is not a JSON object: {err}")))
    }

    fn id(&self) -> Result<&str, Malformed> {
        self.id.as_ref().and_then(Value::as_str).ok_or_else(no_id)
    }
}

impl List {
    /// The `starting_after` of the next page: the id of the last object, when there is more.
    ///
    /// # Errors
    ///
    /// [`Malformed`] when Stripe says there is more but gives no id to continue from.
    pub fn next_cursor(&self) -> Result<Option<String>, Malformed> {
        if !self.has_more {
            return Ok(None);
        }
        let last = self
            .data
            .last()
            .ok_or_else(|| Malformed("has_more is true on an empty page".into()))?;
        Head::of(last)?.id().map(|id| Some(id.to_owned()))
    }
}

/// The query of one page of `endpoint`.
pub(crate) fn list_query(
    endpoint: &Endpoint,
    cursor: Option<&str>,
    options: &ListOptions,
) -> Vec<(&'static str, String)> {
    let mut query = vec![("limit", PAGE_LIMIT.to_owned())];
    if let Some(cursor) = cursor {
        query.push(("starting_after", cursor.to_owned()));
    }
    if let Some(created_gte) = options.created_gte {
        query.push(("created[gte]", created_gte.to_string()));
    }
    if let Some(created_lt) = options.created_lt {
        query.push(("created[lt]", created_lt.to_string()));
    }
    if endpoint.subscriptions {
        query.push(("status", "all".to_owned()));
    }
    query
}

/// The query of one page of a subscription's items (`GET /v1/subscription_items`).
pub(crate) fn items_query(
    subscription_id: &str,
    cursor: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("subscription", subscription_id.to_owned()),
        ("limit", PAGE_LIMIT.to_owned()),
    ];
    if let Some(cursor) = cursor {
        query.push(("starting_after", cursor.to_owned()));
    }
    query
}

/// A listed object as a tree, for the lists whose objects are looked into (subscriptions, their
/// items, events).
///
/// # Errors
///
/// Never in practice: the text was read as JSON already; [`Malformed`] all the same.
pub(crate) fn parsed(object: &RawValue) -> Result<Value, Malformed> {
    serde_json::from_str(object.get()).map_err(|err| Malformed(format!("a listed object: {err}")))
}

/// The record of one listed object of `endpoint`, parsed.
///
/// # Errors
///
/// [`Malformed`] when the object has no string `id`.
pub(crate) fn object_record(endpoint: &Endpoint, object: Value) -> Result<Record, Malformed> {
    let archived = endpoint.archivable && object.get("active") == Some(&Value::Bool(false));
    record(endpoint.resource.collection_key, object, archived)
}

/// The record of one listed object of `endpoint`, kept as the text Stripe sent: the same record
/// as [`object_record`] gives, without building the object.
///
/// # Errors
///
/// [`Malformed`] when the object is not a JSON object or has no string `id`.
pub(crate) fn raw_record(endpoint: &Endpoint, object: Box<RawValue>) -> Result<Record, Malformed> {
    let head = Head::of(&object)?;
    Ok(Record {
        collection_key: endpoint.resource.collection_key,
        external_id: head.id()?.to_owned(),
        created: head.created.as_ref().and_then(Value::as_i64),
        archived: endpoint.archivable && head.active == Some(Value::Bool(false)),
        payload: Payload::Raw(object),
    })
}

/// The record of one subscription item.
///
/// # Errors
///
/// [`Malformed`] when the item has no string `id`.
pub(crate) fn item_record(item: Value) -> Result<Record, Malformed> {
    record(SUBSCRIPTION_ITEM_COLLECTION, item, false)
}

fn record(
    collection_key: &'static str,
    payload: Value,
    archived: bool,
) -> Result<Record, Malformed> {
    let external_id = object_id(&payload)?.to_owned();
    let created = payload.get("created").and_then(Value::as_i64);
    Ok(Record {
        collection_key,
        external_id,
        payload: payload.into(),
        created,
        archived,
    })
}

fn object_id(object: &Value) -> Result<&str, Malformed> {
    object.get("id").and_then(Value::as_str).ok_or_else(no_id)
}

fn no_id() -> Malformed {
    Malformed("an object has no string \"id\"".into())
}

/// The items a listed subscription embeds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EmbeddedItems {
    /// The embedded list is the whole list.
    Complete(Vec<Value>),
    /// Stripe cut the embedded list short (or left it out): the items must be listed separately.
    Truncated,
}

/// The items embedded in `subscription.items`, when that list is complete.
pub(crate) fn embedded_items(subscription: &Value) -> EmbeddedItems {
    let Some(items) = subscription.get("items") else {
        return EmbeddedItems::Truncated;
    };
    match (items.get("data"), items.get("has_more")) {
        (Some(Value::Array(data)), Some(Value::Bool(false))) => {
            EmbeddedItems::Complete(data.clone())
        }
        _ => EmbeddedItems::Truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIXTURES: &str = include_str!("../../../testkit/data/stripe_fixtures3.json");

    fn fixture(resource: &str) -> Value {
        let all: Value = serde_json::from_str(FIXTURES).expect("fixtures parse");
        all["resources"][resource].clone()
    }

    fn endpoint(name: &str) -> Endpoint {
        Endpoint::find(name).expect("known resource")
    }

    fn raw(object: &Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(object).expect("JSON")
    }

    /// The record of a listed object, which must be the same kept raw as parsed.
    fn listed(endpoint: &Endpoint, object: Value) -> Result<Record, Malformed> {
        let kept = raw_record(endpoint, raw(&object));
        let parsed = object_record(endpoint, object);
        assert_eq!(kept, parsed);
        if let Ok(record) = &kept {
            assert!(matches!(record.payload, Payload::Raw(_)));
        }
        parsed
    }

    #[test]
    fn every_resource_has_an_endpoint() {
        for resource in RESOURCES {
            let endpoint = endpoint(resource.name);
            assert_eq!(endpoint.resource, resource);
        }
        assert_eq!(endpoint("subscription").path, "subscriptions");
        assert_eq!(Endpoint::find("invoice"), None);
        assert_eq!(Endpoint::find(""), None);
    }

    #[test]
    fn first_page_query_asks_for_full_pages() {
        let query = list_query(&endpoint("customer"), None, &ListOptions::default());
        assert_eq!(query, vec![("limit", "100".to_owned())]);
    }

    #[test]
    fn range_query_carries_both_created_bounds() {
        let options = ListOptions {
            created_gte: Some(100),
            created_lt: Some(200),
        };
        let query = list_query(&endpoint("customer"), None, &options);
        assert_eq!(
            query,
            vec![
                ("limit", "100".to_owned()),
                ("created[gte]", "100".to_owned()),
                ("created[lt]", "200".to_owned()),
            ]
        );
    }

    #[test]
    fn later_page_query_carries_cursor_and_created_filter() {
        let options = ListOptions {
            created_gte: Some(1_704_067_200),
            created_lt: None,
        };
        let query = list_query(&endpoint("price"), Some("price_123"), &options);
        assert_eq!(
            query,
            vec![
                ("limit", "100".to_owned()),
                ("starting_after", "price_123".to_owned()),
                ("created[gte]", "1704067200".to_owned()),
            ]
        );
    }

    #[test]
    fn subscription_query_includes_canceled_ones() {
        let query = list_query(&endpoint("subscription"), None, &ListOptions::default());
        assert!(query.contains(&("status", "all".to_owned())));
        for name in ["customer", "product", "price", "plan"] {
            let query = list_query(&endpoint(name), None, &ListOptions::default());
            assert!(query.iter().all(|(key, _)| *key != "status"), "{name}");
        }
    }

    #[test]
    fn items_query_names_the_subscription() {
        assert_eq!(
            items_query("sub_1", None),
            vec![
                ("subscription", "sub_1".to_owned()),
                ("limit", "100".to_owned())
            ]
        );
        assert_eq!(
            items_query("sub_1", Some("si_9")),
            vec![
                ("subscription", "sub_1".to_owned()),
                ("limit", "100".to_owned()),
                ("starting_after", "si_9".to_owned()),
            ]
        );
    }

    #[test]
    fn next_cursor_is_the_last_id_only_when_more_follow() {
        let page = |has_more| List {
            data: vec![raw(&json!({"id": "cus_2"})), raw(&json!({"id": "cus_1"}))],
            has_more,
        };
        assert_eq!(page(true).next_cursor(), Ok(Some("cus_1".into())));
        assert_eq!(page(false).next_cursor(), Ok(None));
    }

    #[test]
    fn next_cursor_refuses_more_without_an_id() {
        let empty = List {
            data: vec![],
            has_more: true,
        };
        assert!(empty.next_cursor().is_err());
        let anonymous = List {
            data: vec![raw(&json!({"object": "customer"}))],
            has_more: true,
        };
        assert!(anonymous.next_cursor().is_err());
        let finished = List {
            data: vec![],
            has_more: false,
        };
        assert_eq!(finished.next_cursor(), Ok(None));
    }

    #[test]
    fn list_body_parses_from_stripe_shape() {
        let body = json!({"object": "list", "url": "/v1/customers", "has_more": false,
            "data": [fixture("customer")]});
        let list: List = serde_json::from_value(body).expect("list");
        assert_eq!(list.data.len(), 1);
        assert!(!list.has_more);
        assert!(serde_json::from_value::<List>(json!({"data": []})).is_err());
    }

    #[test]
    fn object_record_keeps_the_payload_as_received() {
        let customer = fixture("customer");
        let record = listed(&endpoint("customer"), customer.clone()).expect("record");
        assert_eq!(record.collection_key, "stripe_customer");
        assert_eq!(record.external_id, "cus_QXg1o8vcGmoR32");
        assert_eq!(record.created, Some(1_234_567_890));
        assert!(!record.archived);
        assert_eq!(record.payload, customer);
    }

    #[test]
    fn inactive_products_prices_and_plans_are_archived() {
        for name in ["product", "price", "plan"] {
            let mut object = fixture(name);
            let active = listed(&endpoint(name), object.clone()).expect("record");
            assert!(!active.archived, "{name}");
            object["active"] = json!(false);
            let inactive = listed(&endpoint(name), object).expect("record");
            assert!(inactive.archived, "{name}");
            assert_eq!(inactive.collection_key, format!("stripe_{name}"));
        }
        // `active` means nothing on a customer.
        let customer = json!({"id": "cus_1", "active": false});
        assert!(
            !listed(&endpoint("customer"), customer)
                .expect("record")
                .archived
        );
    }

    #[test]
    fn object_without_id_is_malformed() {
        assert!(listed(&endpoint("customer"), json!({"created": 1})).is_err());
        assert!(listed(&endpoint("customer"), json!({"id": 7})).is_err());
        assert!(raw_record(&endpoint("customer"), raw(&json!(["cus_1"]))).is_err());
        assert!(item_record(json!({"object": "subscription_item"})).is_err());
    }

    #[test]
    fn complete_embedded_items_become_item_records() {
        let subscription = fixture("subscription");
        let EmbeddedItems::Complete(items) = embedded_items(&subscription) else {
            panic!("fixture subscription embeds all its items");
        };
        let records: Vec<Record> = items
            .into_iter()
            .map(|item| item_record(item).expect("item record"))
            .collect();
        assert_eq!(records.len(), 1);
        let item = &records[0];
        assert_eq!(item.collection_key, "stripe_subscription_item");
        assert_eq!(item.external_id, "si_QXhVnC2h0Jczwc");
        assert_eq!(item.created, Some(1_721_954_054));
        assert_eq!(item.payload.value()["subscription"], subscription["id"]);
        assert_eq!(item.payload, subscription["items"]["data"][0]);
        assert!(!item.archived);
    }

    #[test]
    fn truncated_or_missing_embedded_items_must_be_fetched() {
        let mut subscription = fixture("subscription");
        subscription["items"]["has_more"] = json!(true);
        assert_eq!(embedded_items(&subscription), EmbeddedItems::Truncated);

        let mut no_flag = fixture("subscription");
        no_flag["items"]
            .as_object_mut()
            .expect("items object")
            .remove("has_more");
        assert_eq!(embedded_items(&no_flag), EmbeddedItems::Truncated);

        let mut no_items = fixture("subscription");
        no_items.as_object_mut().expect("object").remove("items");
        assert_eq!(embedded_items(&no_items), EmbeddedItems::Truncated);
    }

    #[test]
    fn subscription_without_items_embeds_an_empty_complete_list() {
        let subscription =
            json!({"id": "sub_1", "items": {"object": "list", "data": [], "has_more": false}});
        assert_eq!(
            embedded_items(&subscription),
            EmbeddedItems::Complete(vec![])
        );
    }
}
