//! Cursor pages: `GET /contacts` and `GET /conversations`, and the page shape search shares.
//!
//! A page is `{"type", "<key>": [...], "total_count", "pages": {"type": "pages", "page",
//! "per_page", "total_pages", "next"?: {"page", "starting_after"}}}`; `next` is left out on the
//! last page. `per_page` defaults to the endpoint's documented size and may not exceed
//! [`MAX_PER_PAGE`]; anything else is a 400. Unknown query parameters are ignored, as Intercom
//! ignores them.

use std::ops::Bound::{Excluded, Unbounded};

use bytes::Bytes;

use super::cursor::{Cursor, Walk};
use super::error::ApiError;
use super::store::{Key, Stored, Table};

/// The largest `per_page` Intercom accepts on its cursor lists and searches.
pub const MAX_PER_PAGE: usize = 150;
/// `GET /contacts` and `POST /contacts/search` without `per_page`.
pub const CONTACTS_PER_PAGE: usize = 50;
/// `GET /conversations` and `POST /conversations/search` without `per_page`.
pub const CONVERSATIONS_PER_PAGE: usize = 20;

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageParams {
    pub per_page: usize,
    pub after: Option<Cursor>,
}

impl PageParams {
    /// Reads `per_page` and `starting_after` from their raw values.
    ///
    /// # Errors
    ///
    /// 400 `parameter_invalid` for a `per_page` outside `1..=150` or a cursor that is not one this
    /// walk served (damaged in transit, say, or from another endpoint).
    pub fn parse(
        per_page: Option<&str>,
        starting_after: Option<&str>,
        walk: Walk,
        default: usize,
    ) -> Result<Self, ApiError> {
        let per_page = match per_page {
            None => default,
            Some(raw) => raw
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_PER_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "per_page must be an integer between 1 and {MAX_PER_PAGE}, got {raw:?}"
                    ))
                })?,
        };
        let after = match starting_after {
            None | Some("") => None,
            Some(text) => Some(Cursor::decode(text, walk).ok_or_else(|| {
                ApiError::invalid("starting_after is not a valid cursor for this request")
            })?),
        };
        Ok(PageParams { per_page, after })
    }

    /// The number of the page these parameters ask for.
    pub fn page(&self) -> u32 {
        self.after.map_or(1, |c| c.page.saturating_add(1))
    }
}

/// One page, ready to render.
#[derive(Debug)]
pub(crate) struct Page {
    pub rows: Vec<Bytes>,
    /// How many objects the whole walk covers.
    pub total: usize,
    pub page: u32,
    pub per_page: usize,
    /// The cursor of the page after this one, if there is one.
    pub next: Option<Cursor>,
}

/// One page of a table in list order (oldest first), from the cursor's position.
pub(crate) fn list(table: &Table, walk: Walk, p: &PageParams) -> Page {
    let start = match p.after {
        Some(c) => Excluded((c.primary, c.seq)),
        None => Unbounded,
    };
    let picked: Vec<(&Key, &Stored)> = table
        .rows
        .range((start, Unbounded))
        .take(p.per_page + 1)
        .collect();
    let more = picked.len() > p.per_page;
    let shown = &picked[..picked.len().min(p.per_page)];
    let page = p.page();
    let next = shown.last().filter(|_| more).map(|(key, _)| Cursor {
        walk,
        page,
        primary: key.0,
        seq: key.1,
    });
    Page {
        rows: shown.iter().map(|(_, s)| s.json.clone()).collect(),
        total: table.keys.len(),
        page,
        per_page: p.per_page,
        next,
    }
}

/// Renders `{"type": list_type, "<key>": [...], "total_count", "pages"}`.
pub(crate) fn render_page(list_type: &str, key: &str, page: &Page) -> Bytes {
    let size: usize = page.rows.iter().map(|r| r.len() + 1).sum();
    let mut out = Vec::with_capacity(size + 300);
    out.extend_from_slice(format!(r#"{{"type":"{list_type}","{key}":["#).as_bytes());
    for (i, row) in page.rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(row);
    }
    let total_pages = page.total.div_ceil(page.per_page);
    out.extend_from_slice(
        format!(
            r#"],"total_count":{},"pages":{{"type":"pages","page":{},"per_page":{},"total_pages":{}"#,
            page.total, page.page, page.per_page, total_pages
        )
        .as_bytes(),
    );
    if let Some(next) = page.next {
        out.extend_from_slice(
            format!(r#","next":{{"page":{},"starting_after":"#, page.page + 1).as_bytes(),
        );
        // Serialising a string into memory cannot fail.
        let _ = serde_json::to_writer(&mut out, &next.encode());
        out.push(b'}');
    }
    out.extend_from_slice(b"}}");
    Bytes::from(out)
}

/// Renders `GET /admins`: `{"type": "admin.list", "admins": [...]}`, unpaginated.
pub(crate) fn render_admins(table: &Table) -> Bytes {
    let mut out = br#"{"type":"admin.list","admins":["#.to_vec();
    for (i, row) in table.rows.values().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&row.json);
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_intercom::store::{Resource, Store};
    use serde_json::{json, Value};

    #[test]
    fn pages_walk_every_row_once() {
        let mut store = Store::default();
        for i in 0..7 {
            store.upsert(
                Resource::Contact,
                json!({"id": format!("c{i}"), "created_at": 100 - i % 3}),
                0,
            );
        }
        let table = store.table(Resource::Contact);
        let mut params = PageParams::parse(Some("3"), None, Walk::ContactList, 50).unwrap();
        let mut seen = Vec::new();
        loop {
            let page = list(table, Walk::ContactList, &params);
            let body: Value = serde_json::from_slice(&render_page("list", "data", &page)).unwrap();
            assert_eq!(body["total_count"], 7);
            assert_eq!(body["pages"]["total_pages"], 3);
            assert_eq!(body["pages"]["page"], seen.len() / 3 + 1);
            seen.extend(
                body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["id"].clone()),
            );
            match body["pages"].get("next") {
                None => break,
                Some(next) => {
                    assert_eq!(next["page"], body["pages"]["page"].as_u64().unwrap() + 1);
                    let cursor = next["starting_after"].as_str().unwrap();
                    params =
                        PageParams::parse(Some("3"), Some(cursor), Walk::ContactList, 50).unwrap();
                }
            }
        }
        assert_eq!(seen, store.ids(Resource::Contact));
    }

    #[test]
    fn refuses_bad_page_sizes_and_foreign_cursors() {
        for bad in ["0", "151", "x", "-1"] {
            let e = PageParams::parse(Some(bad), None, Walk::ContactList, 50).unwrap_err();
            assert_eq!((e.status, e.code), (400, "parameter_invalid"));
        }
        let c = Cursor {
            walk: Walk::ConversationList,
            page: 1,
            primary: 0,
            seq: 1,
        }
        .encode();
        assert!(PageParams::parse(None, Some(&c), Walk::ContactList, 50).is_err());
        assert_eq!(
            PageParams::parse(None, None, Walk::ContactList, 50)
                .unwrap()
                .per_page,
            50
        );
    }
}
