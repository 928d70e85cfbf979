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
use supasaasy_connector::segment::path_segment;
use supasaasy_connector::{ListOptions, Payload, Record};

use crate::resources::{Child, StripeResource};

/// The largest page Stripe serves.
pub(crate) const PAGE_LIMIT: &str = "100";

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

/// The fields of a listed object a record needs, read without building the whole object: the
/// id, the creation time, `active` (archivable resources), the objects resources carry whole (a
/// customer's `discount`), the embedded child lists (`items`, `lines`) and, for a child, the field
/// naming its parent. A test keeps these in step with the table.
#[derive(Debug, Deserialize)]
struct Head<'a> {
    id: Option<Value>,
    created: Option<Value>,
    active: Option<Value>,
    #[serde(borrow)]
    discount: Option<&'a RawValue>,
    #[serde(borrow)]
    items: Option<&'a RawValue>,
    #[serde(borrow)]
    lines: Option<&'a RawValue>,
    subscription: Option<Value>,
    invoice: Option<Value>,
    credit_note: Option<Value>,
}

/// The fields [`Head`] reads of an object carried whole, of an embedded child list, and of a
/// child naming its parent.
#[cfg(test)]
pub(crate) const HEAD_FIELDS: &[&str] = &[
    "discount",
    "items",
    "lines",
    "subscription",
    "invoice",
    "credit_note",
];

/// An embedded child list as the text Stripe sent: `{"data": [...], "has_more": bool, ...}`.
#[derive(Debug, Deserialize)]
struct RawChildren {
    data: Option<Vec<Box<RawValue>>>,
    has_more: Option<bool>,
}

impl<'a> Head<'a> {
    fn of(object: &'a RawValue) -> Result<Head<'a>, Malformed> {
        serde_json::from_str(object.get())
            .map_err(|err| Malformed(format!("a listed object is not a JSON object: {err}")))
    }

    /// The parent a child names in `field`.
    fn parent(&self, field: &str) -> Option<&str> {
        match field {
            "subscription" => self.subscription.as_ref(),
            "invoice" => self.invoice.as_ref(),
            "credit_note" => self.credit_note.as_ref(),
            _ => None,
        }
        .and_then(Value::as_str)
    }

    fn id(&self) -> Result<&str, Malformed> {
        self.id
            .as_ref()
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or_else(no_id)
    }

    fn embedded(&self, field: &str) -> Option<&'a RawValue> {
        match field {
            "discount" => self.discount,
            "items" => self.items,
            "lines" => self.lines,
            _ => None,
        }
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

/// The query of one page of `row`'s list: the page size, the cursor, the `created` bounds (when
/// the list takes them), the row's fixed parameters and its expansions.
pub(crate) fn list_query(
    row: &StripeResource,
    cursor: Option<&str>,
    options: &ListOptions,
) -> Vec<(&'static str, String)> {
    let mut query = vec![("limit", PAGE_LIMIT.to_owned())];
    if let Some(cursor) = cursor {
        query.push(("starting_after", cursor.to_owned()));
    }
    if row.created_filter {
        if let Some(created_gte) = options.created_gte {
            query.push(("created[gte]", created_gte.to_string()));
        }
        if let Some(created_lt) = options.created_lt {
            query.push(("created[lt]", created_lt.to_string()));
        }
    }
    query.extend(row.params.iter().map(|(k, v)| (*k, (*v).to_owned())));
    query.extend(row.expand.iter().map(|e| ("expand[]", format!("data.{e}"))));
    query
}

/// The query of a fetch of one object of `row`: its expansions.
pub(crate) fn fetch_query(row: &StripeResource) -> Vec<(&'static str, String)> {
    row.expand
        .iter()
        .map(|e| ("expand[]", (*e).to_owned()))
        .collect()
}

/// A request's query parameters.
pub(crate) type Query = Vec<(&'static str, String)>;

/// The query of one page of a parent's complete child list, and its path under `/v1/`.
///
/// # Errors
///
/// [`Malformed`] when the list sits under the parent's path and its id is not one a path can
/// hold.
pub(crate) fn child_query(
    row: &StripeResource,
    child: &Child,
    parent_id: &str,
    cursor: Option<&str>,
) -> Result<(String, Query), Malformed> {
    let mut query = Vec::new();
    let path = match child.list {
        crate::resources::ChildList::Query { path, param } => {
            query.push((param, parent_id.to_owned()));
            path.to_owned()
        }
        crate::resources::ChildList::Nested { segment } => {
            let parent = path_segment(parent_id)
                .ok_or_else(|| Malformed(format!("{parent_id:?} is not an id a path can hold")))?;
            format!("{}/{parent}/{segment}", row.path)
        }
    };
    query.push(("limit", PAGE_LIMIT.to_owned()));
    if let Some(cursor) = cursor {
        query.push(("starting_after", cursor.to_owned()));
    }
    Ok((path, query))
}

/// A listed object as a tree, for the lists whose objects are looked into (parents of children,
/// children, events).
///
/// # Errors
///
/// Never in practice: the text was read as JSON already; [`Malformed`] all the same.
pub(crate) fn parsed(object: &RawValue) -> Result<Value, Malformed> {
    serde_json::from_str(object.get()).map_err(|err| Malformed(format!("a listed object: {err}")))
}

/// The record of one object of `row`, parsed.
///
/// # Errors
///
/// [`Malformed`] when the object has no string `id`.
pub(crate) fn object_record(row: &StripeResource, object: Value) -> Result<Record, Malformed> {
    let archived = row.archivable && object.get("active") == Some(&Value::Bool(false));
    record(row.collection_key, object, archived)
}

/// What a listed parent leaves to do after [`raw_records`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Left {
    /// Nothing: the object has no children, or all of them were embedded.
    Nothing,
    /// Its embedded child list was truncated: the children of this parent are to be listed apart.
    Children(String),
}

/// The record of one listed object of `row`, kept as the text Stripe sent, then the records of
/// its embedded children (when the list is complete) and of the objects it carries whole: the
/// same records as [`object_record`], [`child_record`] and [`embedded_records`] give, without
/// building the object.
///
/// # Errors
///
/// [`Malformed`] when the object is not a JSON object or it, a child or an object it carries has
/// no string `id`.
pub(crate) fn raw_records(
    row: &StripeResource,
    object: Box<RawValue>,
    out: &mut Vec<Record>,
) -> Result<Left, Malformed> {
    let head = Head::of(&object)?;
    let id = head.id()?.to_owned();
    let created = head.created.as_ref().and_then(Value::as_i64);
    let archived = row.archivable && head.active == Some(Value::Bool(false));
    let mut after = Vec::new();
    let mut left = Left::Nothing;
    if let Some(child) = &row.child {
        let list = match head.embedded(child.field) {
            Some(raw) => serde_json::from_str::<RawChildren>(raw.get()).ok(),
            None => None,
        };
        match list {
            Some(RawChildren {
                data: Some(data),
                has_more: Some(false),
            }) => {
                for item in data {
                    after.push(raw_child(child, &id, item)?);
                }
            }
            _ => left = Left::Children(id.clone()),
        }
    }
    for embedded in row.embedded {
        let Some(raw) = head.embedded(embedded.field) else {
            continue;
        };
        if let Some(record) = embedded_record(embedded.resource, parsed(raw)?)? {
            after.push(record);
        }
    }
    drop(head);
    out.push(Record {
        collection_key: row.collection_key,
        external_id: id,
        created,
        archived,
        payload: Payload::Raw(object),
    });
    out.append(&mut after);
    Ok(left)
}

/// The record of one embedded child of `parent_id`, kept as the text Stripe sent when it names
/// its parent already, else parsed and named after it (as [`child_record`] does).
///
/// # Errors
///
/// [`Malformed`] when the child is not a JSON object or has no string `id`.
fn raw_child(child: &Child, parent_id: &str, item: Box<RawValue>) -> Result<Record, Malformed> {
    let head = Head::of(&item)?;
    if head.parent(child.parent_field) != Some(parent_id) {
        return child_record(child, parent_id, parsed(&item)?);
    }
    let external_id = head.id()?.to_owned();
    let created = head.created.as_ref().and_then(Value::as_i64);
    drop(head);
    Ok(Record {
        collection_key: child.collection_key,
        external_id,
        created,
        archived: false,
        payload: Payload::Raw(item),
    })
}

/// The records of the objects `object` of `row` carries whole (a customer's discount).
///
/// # Errors
///
/// [`Malformed`] when one has no string `id`.
pub(crate) fn embedded_records(
    row: &StripeResource,
    object: &Value,
) -> Result<Vec<Record>, Malformed> {
    let mut out = Vec::new();
    for embedded in row.embedded {
        if let Some(value) = object.get(embedded.field) {
            if let Some(record) = embedded_record(embedded.resource, value.clone())? {
                out.push(record);
            }
        }
    }
    Ok(out)
}

/// The record of an object of `resource` carried whole; `None` for `null` (or an unexpanded id).
fn embedded_record(resource: &str, value: Value) -> Result<Option<Record>, Malformed> {
    if !value.is_object() {
        return Ok(None);
    }
    let row = StripeResource::named(resource)
        .ok_or_else(|| Malformed(format!("no resource {resource:?}")))?;
    object_record(row, value).map(Some)
}

/// The record of one child of `parent_id`, its parent field set to it: Stripe leaves it out of some
/// children, and the parent a child rides with is the one whose set it belongs to (so a child
/// that left is found by that field).
///
/// # Errors
///
/// [`Malformed`] when the child is not an object or has no string `id`.
pub(crate) fn child_record(
    child: &Child,
    parent_id: &str,
    mut item: Value,
) -> Result<Record, Malformed> {
    let Some(map) = item.as_object_mut() else {
        return Err(Malformed("a child object is not a JSON object".into()));
    };
    if map.get(child.parent_field).and_then(Value::as_str) != Some(parent_id) {
        map.insert(child.parent_field.to_owned(), Value::from(parent_id));
    }
    record(child.collection_key, item, false)
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

pub(crate) fn object_id(object: &Value) -> Result<&str, Malformed> {
    object
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(no_id)
}

fn no_id() -> Malformed {
    Malformed("an object has no string \"id\"".into())
}

/// The children a parent embeds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Embedded {
    /// The embedded list is the whole list.
    Complete(Vec<Value>),
    /// Stripe cut the embedded list short (or left it out): the children must be listed apart.
    Truncated,
}

/// The children embedded in the parent's `child.field` list, when that list is complete.
pub(crate) fn embedded_children(child: &Child, parent: &Value) -> Embedded {
    let Some(list) = parent.get(child.field) else {
        return Embedded::Truncated;
    };
    match (list.get("data"), list.get("has_more")) {
        (Some(Value::Array(data)), Some(Value::Bool(false))) => Embedded::Complete(data.clone()),
        _ => Embedded::Truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::TABLE;
    use serde_json::json;

    const FIXTURES: &str = include_str!("../../../testkit/data/stripe_fixtures3.json");

    fn fixture(object: &str) -> Value {
        let all: Value = serde_json::from_str(FIXTURES).expect("fixtures parse");
        all["resources"][object].clone()
    }

    fn row(name: &str) -> &'static StripeResource {
        StripeResource::named(name).expect("known resource")
    }

    fn raw(object: &Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(object).expect("JSON")
    }

    /// The records of a listed object, which must be the same kept raw as parsed: the object,
    /// its children when all are embedded, what it carries.
    fn listed(row: &'static StripeResource, object: Value) -> Result<Vec<Record>, Malformed> {
        let mut kept = Vec::new();
        let kept = raw_records(row, raw(&object), &mut kept).map(|_| kept);
        let parsed = embedded_records(row, &object).and_then(|carried| {
            let children = match &row.child {
                Some(child) => match embedded_children(child, &object) {
                    Embedded::Complete(items) => {
                        let id = object_id(&object)?.to_owned();
                        items
                            .into_iter()
                            .map(|i| child_record(child, &id, i))
                            .collect::<Result<Vec<_>, _>>()?
                    }
                    Embedded::Truncated => Vec::new(),
                },
                None => Vec::new(),
            };
            let mut all = vec![object_record(row, object)?];
            all.extend(children);
            all.extend(carried);
            Ok(all)
        });
        assert_eq!(kept, parsed);
        if let Ok(records) = &kept {
            assert!(matches!(records[0].payload, Payload::Raw(_)));
        }
        parsed
    }

    #[test]
    fn first_page_query_asks_for_full_pages() {
        let query = list_query(row("customer"), None, &ListOptions::default());
        assert_eq!(query, vec![("limit", "100".to_owned())]);
    }

    #[test]
    fn range_query_carries_both_created_bounds() {
        let options = ListOptions {
            created_gte: Some(100),
            created_lt: Some(200),
            ..ListOptions::default()
        };
        let query = list_query(row("customer"), None, &options);
        assert_eq!(
            query,
            vec![
                ("limit", "100".to_owned()),
                ("created[gte]", "100".to_owned()),
                ("created[lt]", "200".to_owned()),
            ]
        );
        // A list without the filter never gets it.
        let query = list_query(row("tax_id"), None, &options);
        assert_eq!(query, vec![("limit", "100".to_owned())]);
    }

    #[test]
    fn later_page_query_carries_cursor_and_created_filter() {
        let options = ListOptions {
            created_gte: Some(1_704_067_200),
            ..ListOptions::default()
        };
        let query = list_query(row("price"), Some("price_123"), &options);
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
    fn fixed_parameters_and_expansions_come_from_the_table() {
        let query = list_query(row("subscription"), None, &ListOptions::default());
        assert!(query.contains(&("status", "all".to_owned())));
        let query = list_query(row("invoice"), None, &ListOptions::default());
        assert!(query.contains(&("expand[]", "data.payments".to_owned())));
        assert_eq!(
            fetch_query(row("invoice")),
            vec![("expand[]", "payments".to_owned())]
        );
        for name in ["customer", "product", "price", "plan", "charge"] {
            let query = list_query(row(name), None, &ListOptions::default());
            assert!(query.iter().all(|(key, _)| *key != "status"), "{name}");
        }
    }

    #[test]
    fn child_queries_follow_the_child_list() {
        let sub = row("subscription");
        let (path, query) =
            child_query(sub, &sub.child.expect("items"), "sub_1", Some("si_9")).unwrap();
        assert_eq!(path, "subscription_items");
        assert_eq!(
            query,
            vec![
                ("subscription", "sub_1".to_owned()),
                ("limit", "100".to_owned()),
                ("starting_after", "si_9".to_owned()),
            ]
        );
        let invoice = row("invoice");
        let (path, query) =
            child_query(invoice, &invoice.child.expect("lines"), "in_1", None).unwrap();
        assert_eq!(path, "invoices/in_1/lines");
        assert_eq!(query, vec![("limit", "100".to_owned())]);
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
        assert!(
            serde_json::from_value::<List>(json!({"id": "cus_1", "object": "customer"})).is_err()
        );
    }

    #[test]
    fn every_listed_fixture_keeps_its_payload_as_received() {
        for r in TABLE.iter().filter(|r| r.child.is_none()) {
            let object = fixture(r.object);
            let records = listed(r, object.clone()).expect(r.name);
            assert_eq!(records[0].collection_key, r.collection_key);
            assert_eq!(records[0].external_id, object["id"].as_str().expect("id"));
            assert_eq!(records[0].created, object["created"].as_i64(), "{}", r.name);
            assert_eq!(records[0].payload, object);
        }
    }

    #[test]
    fn a_customer_carries_its_discount_as_a_discount_row() {
        let mut customer = fixture("customer");
        customer["discount"] = fixture("discount");
        let records = listed(row("customer"), customer).expect("records");
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].collection_key, "stripe_discount");
        assert_eq!(records[1].external_id, "di_1Pgc6rB7WZ01zgkW7Al8Fal9");
        let mut plain = fixture("customer");
        plain["discount"] = Value::Null;
        assert_eq!(listed(row("customer"), plain).expect("records").len(), 1);
        // Every field the table carries whole, embeds children in, or names a parent in is one
        // the fast path reads.
        for r in TABLE {
            for e in r.embedded {
                assert!(HEAD_FIELDS.contains(&e.field), "{}", e.field);
            }
            if let Some(child) = &r.child {
                assert!(HEAD_FIELDS.contains(&child.field), "{}", child.field);
                assert!(
                    HEAD_FIELDS.contains(&child.parent_field),
                    "{}",
                    child.parent_field
                );
            }
        }
    }

    #[test]
    fn inactive_objects_of_archivable_resources_are_archived() {
        for r in TABLE.iter().filter(|r| r.archivable) {
            let mut object = fixture(r.object);
            object["active"] = json!(true);
            let active = listed(r, object.clone()).expect("record");
            assert!(!active[0].archived, "{}", r.name);
            object["active"] = json!(false);
            let inactive = listed(r, object).expect("record");
            assert!(inactive[0].archived, "{}", r.name);
        }
        // `active` means nothing on a customer.
        let customer = json!({"id": "cus_1", "active": false});
        assert!(!listed(row("customer"), customer).expect("record")[0].archived);
    }

    #[test]
    fn object_without_id_is_malformed() {
        assert!(listed(row("customer"), json!({"created": 1})).is_err());
        assert!(listed(row("customer"), json!({"id": 7})).is_err());
        assert!(listed(row("customer"), json!({"id": ""})).is_err());
        let mut no_vec = Vec::new();
        assert!(raw_records(row("customer"), raw(&json!(["cus_1"])), &mut no_vec).is_err());
        let mut lines = fixture("invoice");
        lines["lines"]["data"][0]
            .as_object_mut()
            .expect("line")
            .remove("id");
        assert!(listed(row("invoice"), lines).is_err());
        let items = row("subscription").child.expect("items");
        assert!(child_record(&items, "sub_1", json!({"object": "subscription_item"})).is_err());
        assert!(child_record(&items, "sub_1", json!("si_1")).is_err());
    }

    #[test]
    fn children_name_their_parent() {
        let notes = row("credit_note").child.expect("lines");
        let line = fixture("credit_note_line_item");
        assert!(line.get("credit_note").is_none());
        let record = child_record(&notes, "cn_1", line).expect("record");
        assert_eq!(record.collection_key, "stripe_credit_note_line_item");
        assert_eq!(record.payload.value()["credit_note"], "cn_1");
        // A child that names its parent is kept as sent; one naming another is named after the
        // parent it rides with.
        let lines = row("invoice").child.expect("lines");
        let line = fixture("line_item");
        let parent = line["invoice"].as_str().expect("invoice").to_owned();
        let record = child_record(&lines, &parent, line.clone()).expect("record");
        assert_eq!(record.payload, line);
        let record = child_record(&lines, "in_other", line).expect("record");
        assert_eq!(record.payload.value()["invoice"], "in_other");
    }

    #[test]
    fn parents_kept_raw_bring_their_embedded_children_or_say_to_list_them() {
        for name in ["subscription", "invoice", "credit_note"] {
            let r = row(name);
            let child = r.child.expect("child");
            let parent = fixture(r.object);
            let embedded = parent[child.field]["data"].as_array().expect("data").len();
            let records = listed(r, parent.clone()).expect(name);
            assert_eq!(records.len(), 1 + embedded, "{name}");
            assert!(records[1..]
                .iter()
                .all(|c| c.collection_key == child.collection_key
                    && c.payload.value()[child.parent_field] == parent["id"]));
            let mut out = Vec::new();
            let left = raw_records(r, raw(&parent), &mut out).expect(name);
            assert_eq!(left, Left::Nothing);
            let mut truncated = parent.clone();
            truncated[child.field]["has_more"] = json!(true);
            let mut out = Vec::new();
            let left = raw_records(r, raw(&truncated), &mut out).expect(name);
            assert_eq!(
                left,
                Left::Children(parent["id"].as_str().unwrap().to_owned())
            );
            assert_eq!(out.len(), 1, "{name}: the children come from their list");
        }
    }

    #[test]
    fn embedded_children_are_complete_only_without_more() {
        for name in ["subscription", "invoice", "credit_note"] {
            let r = row(name);
            let child = r.child.expect("child");
            let parent = fixture(r.object);
            let Embedded::Complete(items) = embedded_children(&child, &parent) else {
                panic!("the {name} fixture embeds all its children");
            };
            assert!(!items.is_empty(), "{name}");
            let mut truncated = parent.clone();
            truncated[child.field]["has_more"] = json!(true);
            assert_eq!(embedded_children(&child, &truncated), Embedded::Truncated);
            let mut missing = parent.clone();
            missing.as_object_mut().expect("object").remove(child.field);
            assert_eq!(embedded_children(&child, &missing), Embedded::Truncated);
        }
        let items = row("subscription").child.expect("items");
        let empty =
            json!({"id": "sub_1", "items": {"object": "list", "data": [], "has_more": false}});
        assert_eq!(
            embedded_children(&items, &empty),
            Embedded::Complete(vec![])
        );
    }
}
