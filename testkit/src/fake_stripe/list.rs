//! List and retrieve semantics over the [`Store`], and their rendering to bytes.
//!
//! Reading happens in two steps so the store's lock is held only briefly: under the lock a page is
//! gathered as reference-counted byte slices ([`Row`]); the response body is assembled afterwards.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound::{self, Excluded, Included, Unbounded};

use bytes::Bytes;

use super::error::ApiError;
use super::query::ListParams;
use super::store::{Item, Resource, SortKey, Store, Stored};

/// Stripe embeds at most this many items in a subscription.
const EMBEDDED_ITEMS: usize = 10;

/// One object of a page, ready to render.
#[derive(Debug)]
pub(crate) struct Row {
    json: Bytes,
    /// For a subscription: its id, its first items and how many it has in all.
    embed: Option<(String, Vec<Bytes>, usize)>,
}

/// One page of a list.
#[derive(Debug)]
pub(crate) struct Page {
    pub rows: Vec<Row>,
    pub has_more: bool,
}

impl Row {
    /// An object served as stored, with nothing embedded.
    pub fn plain(json: Bytes) -> Self {
        Row { json, embed: None }
    }

    /// Writes the object, splicing a subscription's `items` list into it.
    pub fn write(&self, out: &mut Vec<u8>) {
        let Some((sub, items, total)) = &self.embed else {
            out.extend_from_slice(&self.json);
            return;
        };
        // Stored subscriptions are non-empty objects: `{...}`. Reopen before the closing brace.
        let body = self.json.strip_suffix(b"}").unwrap_or(&self.json);
        out.extend_from_slice(body);
        if body.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(br#""items":"#);
        let url = format!("/v1/subscription_items?subscription={sub}");
        let copy = |item: &Bytes, out: &mut Vec<u8>| out.extend_from_slice(item);
        write_list(out, &url, items, copy, *total > items.len(), Some(*total));
        out.push(b'}');
    }

    /// About how many bytes [`Row::write`] produces.
    fn size_hint(&self) -> usize {
        let items = self.embed.as_ref().map_or(0, |(_, items, _)| {
            items.iter().map(Bytes::len).sum::<usize>() + 160
        });
        self.json.len() + items + 1
    }
}

/// Writes `{"object": "list", "data": [...], "has_more", "total_count"?, "url"}`.
fn write_list<T>(
    out: &mut Vec<u8>,
    url: &str,
    objects: &[T],
    write: impl Fn(&T, &mut Vec<u8>),
    has_more: bool,
    total_count: Option<usize>,
) {
    out.extend_from_slice(br#"{"object":"list","data":["#);
    for (i, obj) in objects.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(obj, out);
    }
    out.extend_from_slice(br#"],"has_more":"#);
    out.extend_from_slice(if has_more { b"true" } else { b"false" });
    if let Some(n) = total_count {
        out.extend_from_slice(format!(r#","total_count":{n}"#).as_bytes());
    }
    out.extend_from_slice(br#","url":"#);
    // Serialising a string into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, url);
    out.push(b'}');
}

/// Renders a list page.
pub(crate) fn render_page(url: &str, page: &Page) -> Bytes {
    let size: usize = page.rows.iter().map(Row::size_hint).sum();
    let mut out = Vec::with_capacity(64 + size);
    write_list(&mut out, url, &page.rows, Row::write, page.has_more, None);
    Bytes::from(out)
}

/// Renders one object.
pub(crate) fn render_row(row: &Row) -> Bytes {
    let mut out = Vec::with_capacity(row.size_hint());
    row.write(&mut out);
    Bytes::from(out)
}

/// The larger of two lower bounds.
fn tighter_start(a: Bound<SortKey>, b: Bound<SortKey>) -> Bound<SortKey> {
    match (key_of(&a), key_of(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) if x != y => {
            if x > y {
                a
            } else {
                b
            }
        }
        _ if matches!(a, Excluded(_)) => a,
        _ => b,
    }
}

/// The smaller of two upper bounds.
fn tighter_end(a: Bound<SortKey>, b: Bound<SortKey>) -> Bound<SortKey> {
    match (key_of(&a), key_of(&b)) {
        (None, _) => b,
        (_, None) => a,
        (Some(x), Some(y)) if x != y => {
            if x < y {
                a
            } else {
                b
            }
        }
        _ if matches!(a, Excluded(_)) => a,
        _ => b,
    }
}

fn key_of(b: &Bound<SortKey>) -> Option<SortKey> {
    match b {
        Included(k) | Excluded(k) => Some(*k),
        Unbounded => None,
    }
}

/// Whether a range is empty (`BTreeMap::range` panics on inverted ones).
fn is_empty(start: &Bound<SortKey>, end: &Bound<SortKey>) -> bool {
    match (start, end) {
        (Included(s), Included(e)) => s > e,
        (Included(s) | Excluded(s), Included(e) | Excluded(e)) => s >= e,
        _ => false,
    }
}

/// One page of `rows` (ordered newest first): the rows `admits` keeps within the `created` window
/// and after (or before) the cursor, and whether more follow in the direction of travel.
/// `cursor(param, id)` finds where a cursor id sits.
///
/// # Errors
///
/// Whatever `cursor` answers for an id it does not know.
pub(crate) fn pick<'a, T>(
    rows: &'a BTreeMap<SortKey, T>,
    p: &ListParams,
    cursor: impl Fn(&str, &str) -> Result<SortKey, ApiError>,
    admits: impl Fn(&T) -> bool,
) -> Result<(Vec<&'a T>, bool), ApiError> {
    let mut start = match p.created_max {
        Some(max) => Included((Reverse(max), Reverse(u64::MAX))),
        None => Unbounded,
    };
    let mut end = match p.created_min {
        Some(min) => Included((Reverse(min), Reverse(0))),
        None => Unbounded,
    };
    if let Some(id) = &p.starting_after {
        start = tighter_start(start, Excluded(cursor("starting_after", id)?));
    }
    if let Some(id) = &p.ending_before {
        end = tighter_end(end, Excluded(cursor("ending_before", id)?));
    }
    if is_empty(&start, &end) {
        return Ok((Vec::new(), false));
    }
    let range = rows.range((start, end)).map(|(_, row)| row);
    let admitted = |row: &&T| admits(row);
    let mut picked: Vec<&T> = if p.ending_before.is_some() {
        range.rev().filter(admitted).take(p.limit + 1).collect()
    } else {
        range.filter(admitted).take(p.limit + 1).collect()
    };
    let has_more = picked.len() > p.limit;
    picked.truncate(p.limit);
    if p.ending_before.is_some() {
        picked.reverse();
    }
    Ok((picked, has_more))
}

impl Store {
    /// The row of a live table object.
    pub fn row(&self, resource: Resource, id: &str) -> Option<Row> {
        self.table(resource)
            .row(id)
            .map(|s| self.row_of(resource, s))
    }

    fn row_of(&self, resource: Resource, stored: &Stored) -> Row {
        let embed = (resource == Resource::Subscription).then(|| {
            let items = self.items.get(&stored.id).map_or(&[][..], Vec::as_slice);
            let first = items.iter().take(EMBEDDED_ITEMS).map(|i| i.json.clone());
            (stored.id.clone(), first.collect(), items.len())
        });
        Row {
            json: stored.json.clone(),
            embed,
        }
    }

    /// `GET /v1/{resource}/{id}`.
    ///
    /// # Errors
    ///
    /// 404 `resource_missing` for an unknown id. A deleted customer is not an error: it retrieves
    /// as `{"id", "object": "customer", "deleted": true}`, as on Stripe.
    pub fn retrieve(&self, resource: Resource, id: &str) -> Result<Row, ApiError> {
        if resource == Resource::SubscriptionItem {
            return self
                .items_of_owner(id)
                .and_then(|items| items.iter().find(|i| i.id == id))
                .map(|i| Row::plain(i.json.clone()))
                .ok_or_else(|| ApiError::no_such(404, resource.human(), id, "id"));
        }
        if let Some(row) = self.row(resource, id) {
            return Ok(row);
        }
        let table = self.table(resource);
        if resource == Resource::Customer && table.deleted.contains_key(id) {
            let stub = serde_json::json!({"id": id, "object": "customer", "deleted": true});
            return Ok(Row::plain(Bytes::from(stub.to_string())));
        }
        Err(ApiError::no_such(404, resource.human(), id, "id"))
    }

    fn items_of_owner(&self, item_id: &str) -> Option<&Vec<Item>> {
        self.items.get(self.owner_of(item_id)?)
    }

    /// One page of a table resource, newest first.
    ///
    /// # Errors
    ///
    /// 400 `resource_missing` when a cursor names an object the store never held.
    pub fn list(&self, resource: Resource, p: &ListParams) -> Result<Page, ApiError> {
        if resource == Resource::SubscriptionItem {
            return self.list_items(p);
        }
        let table = self.table(resource);
        let cursor = |param: &str, id: &str| {
            table
                .cursor(id)
                .ok_or_else(|| ApiError::no_such(400, resource.human(), id, param))
        };
        let (picked, has_more) = pick(&table.rows, p, cursor, |s| admits(resource, p, s))?;
        Ok(Page {
            rows: picked
                .into_iter()
                .map(|s| self.row_of(resource, s))
                .collect(),
            has_more,
        })
    }

    /// One page of `/v1/subscription_items?subscription=...`, in subscription order.
    fn list_items(&self, p: &ListParams) -> Result<Page, ApiError> {
        let sub = p.subscription.as_deref().unwrap_or_default();
        if !self.contains(Resource::Subscription, sub) {
            return Err(ApiError::no_such(404, "subscription", sub, "subscription"));
        }
        let items = self.items.get(sub).map_or(&[][..], Vec::as_slice);
        let position = |param: &str, id: &str| {
            items
                .iter()
                .position(|i| i.id == id)
                .ok_or_else(|| ApiError::no_such(400, "subscription item", id, param))
        };
        let (from, to, has_more) = if let Some(id) = &p.ending_before {
            let to = position("ending_before", id)?;
            let from = to.saturating_sub(p.limit);
            (from, to, from > 0)
        } else {
            let from = match &p.starting_after {
                Some(id) => position("starting_after", id)? + 1,
                None => 0,
            };
            let to = (from + p.limit).min(items.len());
            (from, to, to < items.len())
        };
        let rows = items[from..to]
            .iter()
            .map(|i| Row::plain(i.json.clone()))
            .collect();
        Ok(Page { rows, has_more })
    }
}

/// Whether a stored object passes the list's filters.
fn admits(resource: Resource, p: &ListParams, s: &Stored) -> bool {
    let a = &s.attrs;
    let eq = |want: &Option<String>, have: &Option<Box<str>>| {
        want.as_deref().is_none_or(|w| have.as_deref() == Some(w))
    };
    // Without `status`, Stripe hides canceled subscriptions; other resources have no such filter.
    (resource != Resource::Subscription || p.status.admits(a.status.as_deref()))
        && eq(&p.customer, &a.customer)
        && eq(&p.product, &a.product)
        && eq(&p.email, &a.email)
        && p.active.is_none_or(|w| a.active == Some(w))
}
