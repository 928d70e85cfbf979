//! List and retrieve semantics over the [`Store`], and their rendering to bytes.
//!
//! Reading happens in two steps so the store's lock is held only briefly: under the lock a page is
//! gathered as reference-counted byte slices ([`Row`]); the response body is assembled afterwards.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound::{self, Excluded, Included, Unbounded};

use bytes::Bytes;
use supasaasy_stripe::resources::{Child, ChildList, StripeResource, TABLE};

use super::error::ApiError;
use super::kinds::Kind;
use super::query::ListParams;
use super::store::{Item, SortKey, Store, Stored};

/// Stripe embeds at most this many children in a parent (items, lines).
const EMBEDDED_CHILDREN: usize = 10;

/// A parent's first children, to embed in its child field.
#[derive(Debug)]
struct Embed {
    /// The parent's field holding the list (`items`).
    field: &'static str,
    /// The complete child list's URL.
    url: String,
    /// The first children.
    first: Vec<Bytes>,
    /// How many children the parent has in all.
    total: usize,
}

/// One object of a page, ready to render.
#[derive(Debug)]
pub(crate) struct Row {
    json: Bytes,
    /// For a parent: its first children.
    embed: Option<Embed>,
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

    /// Writes the object, splicing a parent's child list into it.
    pub fn write(&self, out: &mut Vec<u8>) {
        let Some(embed) = &self.embed else {
            out.extend_from_slice(&self.json);
            return;
        };
        // Stored parents are objects: `{...}`. Reopen before the closing brace.
        let body = self.json.strip_suffix(b"}").unwrap_or(&self.json);
        out.extend_from_slice(body);
        if body.len() > 1 {
            out.push(b',');
        }
        write_str(out, embed.field);
        out.push(b':');
        let copy = |item: &Bytes, out: &mut Vec<u8>| out.extend_from_slice(item);
        let more = embed.total > embed.first.len();
        write_list(out, &embed.url, &embed.first, copy, more, Some(embed.total));
        out.push(b'}');
    }

    /// About how many bytes [`Row::write`] produces.
    fn size_hint(&self) -> usize {
        let children = self
            .embed
            .as_ref()
            .map_or(0, |e| e.first.iter().map(Bytes::len).sum::<usize>() + 160);
        self.json.len() + children + 1
    }
}

/// The URL of a parent's complete child list.
pub(crate) fn child_url(row: &StripeResource, child: &Child, parent: &str) -> String {
    match child.list {
        ChildList::Query { path, param } => format!("/v1/{path}?{param}={parent}"),
        ChildList::Nested { segment } => format!("/v1/{}/{parent}/{segment}", row.path),
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a string into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
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
    write_str(out, url);
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
    /// The row of a live object of `TABLE[row]`.
    pub fn row(&self, row: usize, id: &str) -> Option<Row> {
        self.table(row).row(id).map(|s| self.row_of(row, s))
    }

    fn row_of(&self, row: usize, stored: &Stored) -> Row {
        let resource = &TABLE[row];
        let embed = resource.child.as_ref().map(|child| {
            let children = self.children(row).of(&stored.id);
            let first = children.iter().take(EMBEDDED_CHILDREN);
            Embed {
                field: child.field,
                url: child_url(resource, child, &stored.id),
                first: first.map(|i| i.json.clone()).collect(),
                total: children.len(),
            }
        });
        Row {
            json: stored.json.clone(),
            embed,
        }
    }

    /// `GET /v1/{retrieve}/{id}` (a child: `GET /v1/{child path}/{id}`).
    ///
    /// # Errors
    ///
    /// 404 `resource_missing` for an unknown id. A deleted customer is not an error: it retrieves
    /// as `{"id", "object": "customer", "deleted": true}`, as on Stripe.
    pub fn retrieve(&self, kind: Kind, id: &str) -> Result<Row, ApiError> {
        let missing = || ApiError::no_such(404, &kind.human(), id, "id");
        let Kind::Row(row) = kind else {
            let child = self.children(kind.index()).get(id).ok_or_else(missing)?;
            return Ok(Row::plain(child.json.clone()));
        };
        if let Some(found) = self.row(row, id) {
            return Ok(found);
        }
        if kind.stub_when_deleted() && self.table(row).deleted.contains_key(id) {
            let object = kind.row().object;
            let stub = serde_json::json!({"id": id, "object": object, "deleted": true});
            return Ok(Row::plain(Bytes::from(stub.to_string())));
        }
        Err(missing())
    }

    /// One page of the top-level list of `TABLE[row]`, newest first.
    ///
    /// # Errors
    ///
    /// 400 `resource_missing` when a cursor names an object the store never held.
    pub fn list(&self, row: usize, p: &ListParams) -> Result<Page, ApiError> {
        let table = self.table(row);
        let cursor = |param: &str, id: &str| {
            table
                .cursor(id)
                .ok_or_else(|| ApiError::no_such(400, &Kind::Row(row).human(), id, param))
        };
        let (picked, has_more) = pick(&table.rows, p, cursor, |s| admits(p, s))?;
        Ok(Page {
            rows: picked.into_iter().map(|s| self.row_of(row, s)).collect(),
            has_more,
        })
    }

    /// One page of the objects of `TABLE[row]` under one customer, newest first.
    ///
    /// # Errors
    ///
    /// 404 `resource_missing` when the customer does not exist (or was deleted); 400 when a
    /// cursor names an object the store never held.
    pub fn list_of_customer(
        &self,
        row: usize,
        customer: &str,
        p: &ListParams,
    ) -> Result<Page, ApiError> {
        let kind = Kind::Row(row);
        // Routes name only rows listed per customer, which have an owner.
        let owner = kind.owner().unwrap_or(row);
        if !self.table(owner).keys.contains_key(customer) {
            let human = Kind::Row(owner).human();
            return Err(ApiError::no_such(404, &human, customer, "customer"));
        }
        let table = self.table(row);
        let none = BTreeMap::new();
        let theirs = table.by_customer.get(customer).unwrap_or(&none);
        let cursor = |param: &str, id: &str| {
            table
                .cursor(id)
                .ok_or_else(|| ApiError::no_such(400, &kind.human(), id, param))
        };
        let (picked, has_more) = pick(theirs, p, cursor, |_| true)?;
        let rows = picked
            .into_iter()
            .filter_map(|id| table.row(id))
            .map(|s| self.row_of(row, s))
            .collect();
        Ok(Page { rows, has_more })
    }

    /// One page of a parent's complete child list, in the parent's order.
    ///
    /// # Errors
    ///
    /// 404 `resource_missing` when the parent does not exist; 400 when a cursor names a child
    /// the parent does not hold.
    pub fn list_children(
        &self,
        row: usize,
        parent: &str,
        p: &ListParams,
    ) -> Result<Page, ApiError> {
        if !self.table(row).keys.contains_key(parent) {
            let param = match TABLE[row].child.map(|c| c.list) {
                Some(ChildList::Query { param, .. }) => param,
                _ => "id",
            };
            return Err(ApiError::no_such(
                404,
                &Kind::Row(row).human(),
                parent,
                param,
            ));
        }
        let items: &[Item] = self.children(row).of(parent);
        let human = Kind::Child(row).human();
        let position = |param: &str, id: &str| {
            items
                .iter()
                .position(|i| i.id == id)
                .ok_or_else(|| ApiError::no_such(400, &human, id, param))
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
fn admits(p: &ListParams, s: &Stored) -> bool {
    let a = &s.attrs;
    let eq = |want: &Option<String>, have: &Option<Box<str>>| {
        want.as_deref().is_none_or(|w| have.as_deref() == Some(w))
    };
    p.status.admits(a.status.as_deref())
        && eq(&p.customer, &a.customer)
        && eq(&p.product, &a.product)
        && eq(&p.email, &a.email)
        && p.active.is_none_or(|w| a.active == Some(w))
}
