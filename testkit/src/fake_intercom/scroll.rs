//! `GET /companies/scroll`: Intercom's only way to walk every company, and its sharp edges.
//!
//! Rules, as Intercom documents them:
//! - one scroll per workspace: starting one (no `scroll_param`) while another is open is a 400
//!   `scroll_exists`;
//! - a scroll idle for the expiry (a minute on Intercom) is gone: its `scroll_param` answers 404,
//!   and a new scroll may start;
//! - the end is a page with empty `data`; that page closes the scroll;
//! - a 500 means the scroll is lost and must be started again (injected with
//!   [`Scrolls::fail_next`], which closes the open scroll when the status is 500).
//!
//! The `scroll_param` stays the same for the whole of a scroll, as Intercom's does, so a client
//! cannot tell a stuck scroll by its parameter alone. [`Scrolls::stuck`] makes the scroll serve the
//! same page with the same parameter forever, to check that a client gives up. Pages are
//! [`SCROLL_PAGE_SIZE`] companies in list order (oldest `created_at` first) and read the table as it
//! is at each request: a company created during a scroll with a later `created_at` still shows up.
//! Expiry follows real time (an `Instant`), not the fake's pinnable clock.

use std::ops::Bound::{Excluded, Unbounded};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::error::ApiError;
use super::store::{Key, Table};
use crate::fake_stripe::synth::Rng;

/// Companies per scroll page.
pub const SCROLL_PAGE_SIZE: usize = 50;
/// How long an unused scroll stays open, as on Intercom.
pub const DEFAULT_SCROLL_EXPIRY: Duration = Duration::from_secs(60);

/// The open scroll.
#[derive(Debug)]
struct Open {
    param: String,
    /// Where the page served last started (`None`: at the beginning).
    from: Option<Key>,
    /// Where the next page starts; `None` before the first page.
    next: Option<Key>,
    /// When it was last used, for expiry.
    last_used: Instant,
}

/// The workspace's scroll and the faults queued for it.
#[derive(Debug)]
pub(crate) struct Scrolls {
    open: Option<Open>,
    expiry: Duration,
    /// Scrolls started so far, to make each `scroll_param` new.
    started: u64,
    fail_remaining: u64,
    fail_status: u16,
    stuck: bool,
}

impl Default for Scrolls {
    fn default() -> Self {
        Scrolls {
            open: None,
            expiry: DEFAULT_SCROLL_EXPIRY,
            started: 0,
            fail_remaining: 0,
            fail_status: 500,
            stuck: false,
        }
    }
}

/// A deterministic, UUID-shaped scroll parameter.
fn uuid_like(n: u64) -> String {
    let mut rng = Rng(n ^ 0x5c_7011);
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

impl Scrolls {
    pub fn set_expiry(&mut self, expiry: Duration) {
        self.expiry = expiry;
    }

    /// Answers the next `n` scroll requests with `status`; a 500 also loses the open scroll.
    pub fn fail_next(&mut self, n: u64, status: u16) {
        self.fail_remaining = n;
        self.fail_status = status;
    }

    pub fn stuck(&mut self, stuck: bool) {
        self.stuck = stuck;
    }

    /// Makes the open scroll expire now, as if it had been idle for the expiry.
    pub fn expire(&mut self) {
        self.open = None;
    }

    /// The open scroll's parameter, unless it has expired by `now`.
    pub fn open_param(&mut self, now: Instant) -> Option<String> {
        self.drop_expired(now);
        self.open.as_ref().map(|o| o.param.clone())
    }

    fn drop_expired(&mut self, now: Instant) {
        if self
            .open
            .as_ref()
            .is_some_and(|o| now.saturating_duration_since(o.last_used) >= self.expiry)
        {
            self.open = None;
        }
    }

    /// Answers one scroll request.
    ///
    /// # Errors
    ///
    /// An injected fault; 400 `scroll_exists` when starting while a scroll is open; 404
    /// `not_found` for a parameter that is not the open scroll's.
    pub fn request(
        &mut self,
        param: Option<&str>,
        table: &Table,
        now: Instant,
    ) -> Result<Bytes, ApiError> {
        if self.fail_remaining > 0 {
            self.fail_remaining -= 1;
            if self.fail_status == 500 {
                self.open = None;
                return Err(ApiError::scroll_broken());
            }
            return Err(ApiError::injected(self.fail_status));
        }
        self.drop_expired(now);
        let open = match (param.filter(|p| !p.is_empty()), self.open.as_mut()) {
            (None, Some(_)) => return Err(ApiError::scroll_exists()),
            (None, None) => {
                self.started += 1;
                self.open.insert(Open {
                    param: uuid_like(self.started),
                    from: None,
                    next: None,
                    last_used: now,
                })
            }
            (Some(p), Some(open)) if open.param == p => open,
            (Some(_), _) => return Err(ApiError::scroll_not_found()),
        };
        open.last_used = now;
        let start = if self.stuck { open.from } else { open.next };
        let range = match start {
            Some(key) => table.rows.range((Excluded(key), Unbounded)),
            None => table.rows.range(..),
        };
        let page: Vec<_> = range.take(SCROLL_PAGE_SIZE).collect();
        let body = render(&open.param, page.iter().map(|(_, s)| &s.json));
        match page.last() {
            Some((key, _)) => {
                open.from = start;
                open.next = Some(**key);
            }
            None if !self.stuck => self.open = None,
            None => {}
        }
        Ok(body)
    }
}

/// `{"type": "list", "data": [...], "pages": null, "total_count": null, "scroll_param": ...}`,
/// as in the API description's example.
fn render<'a>(param: &str, rows: impl Iterator<Item = &'a Bytes>) -> Bytes {
    let mut out = br#"{"type":"list","data":["#.to_vec();
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(row);
    }
    out.extend_from_slice(
        format!(r#"],"pages":null,"total_count":null,"scroll_param":"{param}"}}"#).as_bytes(),
    );
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_intercom::store::{Resource, Store};
    use serde_json::{json, Value};

    fn companies(n: usize) -> Store {
        let mut store = Store::default();
        for i in 0..n {
            store.upsert(
                Resource::Company,
                json!({"id": format!("co{i}"), "created_at": i}),
                0,
            );
        }
        store
    }

    fn page(s: &mut Scrolls, p: Option<&str>, t: &Table, now: Instant) -> Result<Value, ApiError> {
        s.request(p, t, now)
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn walks_then_closes_and_refuses_a_second_scroll() {
        let store = companies(SCROLL_PAGE_SIZE + 1);
        let table = store.table(Resource::Company);
        let mut s = Scrolls::default();
        let t0 = Instant::now();
        let first = page(&mut s, None, table, t0).unwrap();
        let param = first["scroll_param"].as_str().unwrap().to_owned();
        assert_eq!(first["data"].as_array().unwrap().len(), SCROLL_PAGE_SIZE);
        assert_eq!(
            page(&mut s, None, table, t0).unwrap_err().code,
            "scroll_exists"
        );
        let second = page(&mut s, Some(&param), table, t0).unwrap();
        assert_eq!(second["data"][0]["id"], format!("co{SCROLL_PAGE_SIZE}"));
        assert_eq!(second["scroll_param"], param.as_str());
        let end = page(&mut s, Some(&param), table, t0).unwrap();
        assert_eq!(end["data"], json!([]));
        assert_eq!(
            page(&mut s, Some(&param), table, t0).unwrap_err().status,
            404
        );
        let again = page(&mut s, None, table, t0).unwrap();
        assert_ne!(again["scroll_param"], param.as_str());
    }

    #[test]
    fn expires_when_idle_and_breaks_on_a_500() {
        let store = companies(3);
        let table = store.table(Resource::Company);
        let mut s = Scrolls::default();
        s.set_expiry(Duration::from_secs(60));
        let t0 = Instant::now();
        let param = page(&mut s, None, table, t0).unwrap()["scroll_param"].clone();
        let param = param.as_str().unwrap();
        let later = t0 + Duration::from_secs(60);
        assert_eq!(s.open_param(t0), Some(param.to_owned()));
        assert_eq!(
            page(&mut s, Some(param), table, later).unwrap_err().status,
            404
        );
        let param = page(&mut s, None, table, later).unwrap()["scroll_param"].clone();
        s.fail_next(1, 500);
        let broken = page(&mut s, param.as_str(), table, later).unwrap_err();
        assert_eq!((broken.status, broken.code), (500, "server_error"));
        assert_eq!(s.open_param(later), None);
        s.stuck(true);
        let a = page(&mut s, None, table, later).unwrap();
        for _ in 0..5 {
            assert_eq!(
                page(&mut s, a["scroll_param"].as_str(), table, later).unwrap(),
                a
            );
        }
    }

    #[test]
    fn params_look_like_uuids() {
        let p = uuid_like(1);
        assert_eq!(p.len(), 36);
        assert_eq!(p.matches('-').count(), 4);
        assert_ne!(p, uuid_like(2));
    }
}
