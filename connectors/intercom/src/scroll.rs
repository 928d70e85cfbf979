//! The company listing: Intercom's scroll (`GET /companies/scroll`, then `?scroll_param=P`), the
//! only way to walk every company, and its faults.
//!
//! A scroll is not a cursor. Intercom keeps one open scroll per workspace (a second gets 400
//! `scroll_exists`), each request moves it on (asking again with the same `scroll_param` does not
//! give the same page), it expires after a minute idle, and after a 500 it must be started again.
//! So the cursor handed to the daemon (`scroll:<pages>:<first>:<last>:<param>`, see
//! [`ScrollCursor`]) is only continued by the connector that handed it out, when it is the last
//! one it handed out and nothing may have moved the scroll since (see [`ScrollMemory`]). Any other
//! cursor (a retry after an answer that may have moved the scroll, a task resumed after a crash or
//! by another daemon) restarts the scroll from the beginning: records are upserts, so the companies
//! seen twice are harmless, while a page skipped would be tombstoned by the run's sweep.
//!
//! Invariants: an empty page ends the walk; a page that repeats the previous page or the first
//! page of the scroll (a scroll that does not move on, or came round again) fails it with a fatal
//! error (so the run sweeps nothing it never reached), as does passing [`SCROLL_PAGE_CAP`] pages in
//! one run, restarts included, so a walk never spins;
//! an expired `scroll_param` (404, or 400 other than `scroll_exists`) restarts the scroll at once.

use std::sync::Mutex;

use serde_json::Value;
use supasaasy_connector::{ConnectorError, ListOptions, Page};

use crate::client::IntercomHttp;
use crate::listing::{self, malformed};
use crate::objects::{self, Kind, Malformed};

/// The most scroll pages one run walks, restarts included (a scroll page holds up to 100
/// companies at Intercom, so a million companies).
pub(crate) const SCROLL_PAGE_CAP: u32 = 10_000;

const PATH: &str = "companies/scroll";
const REQUEST: &str = "GET /companies/scroll";

/// Where a company walk stands, as the daemon stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScrollCursor {
    /// Pages walked in this run, restarts included, for [`SCROLL_PAGE_CAP`].
    pub pages: u32,
    /// Fingerprint of the first page of the current scroll: seeing it again means the scroll came
    /// round.
    pub first: u64,
    /// Fingerprint of the last page: seeing it again means the scroll does not move on.
    pub last: u64,
    /// The `scroll_param` to continue with.
    pub param: String,
}

impl ScrollCursor {
    /// `scroll:<pages>:<first hex>:<last hex>:<param>`.
    pub fn encode(&self) -> String {
        format!(
            "scroll:{}:{:016x}:{:016x}:{}",
            self.pages, self.first, self.last, self.param
        )
    }

    /// Reads a cursor made by [`ScrollCursor::encode`]; `None` for anything else.
    pub fn decode(cursor: &str) -> Option<ScrollCursor> {
        let mut parts = cursor.strip_prefix("scroll:")?.splitn(4, ':');
        let pages = parts.next()?.parse().ok()?;
        let first = u64::from_str_radix(parts.next()?, 16).ok()?;
        let last = u64::from_str_radix(parts.next()?, 16).ok()?;
        let param = parts.next()?;
        if param.is_empty() {
            return None;
        }
        Some(ScrollCursor {
            pages,
            first,
            last,
            param: param.to_owned(),
        })
    }
}

/// A fingerprint of a page: FNV-1a over its sorted ids, stable across processes and versions.
pub(crate) fn fingerprint(ids: &[String]) -> u64 {
    let mut sorted: Vec<&str> = ids.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for id in sorted {
        for byte in id.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// What a scroll page means for the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// More pages follow from this cursor.
    Continue(ScrollCursor),
    /// The scroll is over (an empty page).
    End,
    /// The walk stops here although the scroll did not say it is over.
    Stop(String),
}

/// Decides the walk's next step after a page with `ids` and `param`. `before` is the cursor the
/// page was asked with (for its page count and fingerprints), `fresh` says the page is the first
/// of a new scroll.
///
/// # Errors
///
/// [`Malformed`] when a page with companies gives no `scroll_param` to continue with.
pub(crate) fn next_step(
    before: Option<&ScrollCursor>,
    fresh: bool,
    ids: &[String],
    param: Option<&str>,
) -> Result<Step, Malformed> {
    if ids.is_empty() {
        return Ok(Step::End);
    }
    let param = param
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Malformed("a page of companies gives no scroll_param".into()))?;
    let pages = before.map_or(0, |b| b.pages).saturating_add(1);
    let print = fingerprint(ids);
    let first = match before {
        Some(before) if !fresh => {
            if print == before.last {
                return Ok(Step::Stop(format!(
                    "the scroll returned the same page again after {pages} pages"
                )));
            }
            if print == before.first {
                return Ok(Step::Stop(format!(
                    "the scroll came back to its first page after {pages} pages"
                )));
            }
            before.first
        }
        _ => print,
    };
    if pages >= SCROLL_PAGE_CAP {
        return Ok(Step::Stop(format!(
            "the walk reached the cap of {SCROLL_PAGE_CAP} pages"
        )));
    }
    Ok(Step::Continue(ScrollCursor {
        pages,
        first,
        last: print,
        param: param.to_owned(),
    }))
}

/// The one cursor of a live scroll that this connector may continue: the last one it handed out,
/// while nothing since may have moved the scroll.
#[derive(Debug, Default)]
pub(crate) struct ScrollMemory {
    live: Mutex<Option<String>>,
}

impl ScrollMemory {
    /// Takes the live cursor out if it is `cursor`: the caller is about to move the scroll.
    fn take_if(&self, cursor: &str) -> bool {
        let mut live = self.lock();
        let matches = live.as_deref() == Some(cursor);
        *live = None;
        matches
    }

    fn set(&self, cursor: Option<String>) {
        *self.lock() = cursor;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Lists one page of companies from `cursor`; see the module documentation for when a cursor
/// continues its scroll and when the scroll starts again.
///
/// # Errors
///
/// The classified failure of the request (`scroll_exists` is rate limited: another scroll holds
/// the workspace); a malformed answer is retryable, and the next call starts a new scroll.
pub(crate) async fn companies_page(
    http: &IntercomHttp,
    memory: &ScrollMemory,
    cursor: Option<&str>,
    options: &ListOptions,
) -> Result<Page, ConnectorError> {
    let before = cursor.and_then(ScrollCursor::decode);
    let resumable = match (cursor, &before) {
        (Some(cursor), Some(_)) => memory.take_if(cursor),
        (Some(cursor), None) => {
            memory.set(None);
            tracing::warn!(app_key = %http.app_key(), cursor, "not a company scroll cursor; starting a new scroll");
            false
        }
        (None, _) => {
            memory.set(None);
            false
        }
    };
    if cursor.is_some() && before.is_some() && !resumable {
        tracing::info!(
            app_key = %http.app_key(),
            "the company scroll may have moved since this cursor; starting a new scroll"
        );
    }

    let mut requests = 0;
    let mut answer = None;
    if let (true, Some(before), Some(cursor)) = (resumable, &before, cursor) {
        requests += 1;
        match http
            .get(PATH, &[("scroll_param", before.param.clone())])
            .await
        {
            Ok(page) => answer = Some(page),
            Err(failure)
                if matches!(failure.status, Some(400 | 404))
                    && failure.code.as_deref() != Some("scroll_exists") =>
            {
                tracing::warn!(
                    app_key = %http.app_key(),
                    status = failure.status,
                    "the company scroll expired; starting a new scroll"
                );
            }
            Err(failure) => {
                // Refused before Intercom read it, or rate limited: the scroll did not move.
                if failure.unsent || failure.status == Some(429) {
                    memory.set(Some(cursor.to_owned()));
                }
                return Err(failure.error);
            }
        }
    }
    let fresh = answer.is_none();
    let mut answer = match answer {
        Some(answer) => answer,
        None => {
            requests += 1;
            http.get(PATH, &[]).await?
        }
    };

    let companies = list_items(&mut answer).map_err(|err| malformed(http, REQUEST, err))?;
    let ids = companies
        .iter()
        .map(objects::id_of)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| malformed(http, REQUEST, err))?;
    let param = answer.get("scroll_param").and_then(Value::as_str);
    let step = next_step(before.as_ref(), fresh, &ids, param)
        .map_err(|err| malformed(http, REQUEST, err))?;
    let records = companies
        .into_iter()
        .filter(|company| listing::wanted(company, options))
        .map(|company| objects::record(Kind::Company, company))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| malformed(http, REQUEST, err))?;

    let next_cursor = match step {
        Step::Continue(next) => {
            let next = next.encode();
            memory.set(Some(next.clone()));
            Some(next)
        }
        Step::End => None,
        Step::Stop(why) => {
            // Ending the walk as complete would let the run sweep every company it did not reach;
            // failing it keeps the mirror as it was.
            tracing::warn!(app_key = %http.app_key(), "stopping the company walk: {why}");
            return Err(ConnectorError::Fatal {
                message: format!(
                    "Intercom's company scroll for app {} did not progress ({why}); the walk was stopped and nothing was swept",
                    http.app_key()
                ),
            });
        }
    };
    Ok(Page {
        records,
        next_cursor,
        requests,
        ..Page::default()
    })
}

/// The companies of a scroll page: `data` (API 2.x), or `companies` (older answers).
fn list_items(answer: &mut Value) -> Result<Vec<Value>, Malformed> {
    if answer.get("data").is_some_and(|d| !d.is_null()) {
        listing::list_items(answer, "data")
    } else {
        listing::list_items(answer, "companies")
            .map_err(|_| Malformed("the scroll page has no \"data\" array".into()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn cursors_round_trip() {
        let cursor = ScrollCursor {
            pages: 12,
            first: 0xdead_beef,
            last: u64::MAX,
            param: "69352cd2-ab5b-42ac-b004-a13d4e55e9b0".into(),
        };
        let text = cursor.encode();
        assert_eq!(
            text,
            "scroll:12:00000000deadbeef:ffffffffffffffff:69352cd2-ab5b-42ac-b004-a13d4e55e9b0"
        );
        assert_eq!(ScrollCursor::decode(&text), Some(cursor));
        let odd = ScrollCursor {
            param: "a:b:c".into(),
            ..ScrollCursor::decode(&text).expect("cursor")
        };
        assert_eq!(ScrollCursor::decode(&odd.encode()), Some(odd));
        for bad in [
            "",
            "69352cd2",
            "scroll:",
            "scroll:x:0:0:p",
            "scroll:1:zz:0:p",
            "scroll:1:0:0:",
            "scroll:1:0:0",
            "WzE3MzQ1",
        ] {
            assert_eq!(ScrollCursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn fingerprints_ignore_order_but_not_content() {
        assert_eq!(
            fingerprint(&ids(&["a", "b"])),
            fingerprint(&ids(&["b", "a"]))
        );
        assert_ne!(
            fingerprint(&ids(&["a", "b"])),
            fingerprint(&ids(&["a", "c"]))
        );
        assert_ne!(fingerprint(&ids(&["ab"])), fingerprint(&ids(&["a", "b"])));
        // Pinned: cursors stored by one build are read by the next.
        assert_eq!(fingerprint(&ids(&["a"])), 0x089b_e207_b544_f1e4);
    }

    #[test]
    fn a_walk_continues_until_an_empty_page() {
        let first = next_step(None, true, &ids(&["c1", "c2"]), Some("p1")).expect("step");
        let Step::Continue(first) = first else {
            panic!("{first:?}")
        };
        assert_eq!(first.pages, 1);
        assert_eq!(first.first, first.last);
        assert_eq!(first.param, "p1");

        // Intercom may keep the same scroll_param for every page of one scroll.
        let second = next_step(Some(&first), false, &ids(&["c3"]), Some("p1")).expect("step");
        let Step::Continue(second) = second else {
            panic!("{second:?}")
        };
        assert_eq!(second.pages, 2);
        assert_eq!(second.first, first.first);
        assert_ne!(second.last, first.last);

        assert_eq!(
            next_step(Some(&second), false, &[], Some("p1")),
            Ok(Step::End)
        );
        assert_eq!(next_step(Some(&second), false, &[], None), Ok(Step::End));
    }

    #[test]
    fn a_scroll_that_does_not_move_on_or_comes_round_stops() {
        let Ok(Step::Continue(one)) = next_step(None, true, &ids(&["c1"]), Some("p")) else {
            panic!("first page")
        };
        let Ok(Step::Continue(two)) = next_step(Some(&one), false, &ids(&["c2"]), Some("p")) else {
            panic!("second page")
        };
        assert!(matches!(
            next_step(Some(&two), false, &ids(&["c2"]), Some("p")),
            Ok(Step::Stop(why)) if why.contains("same page")
        ));
        assert!(matches!(
            next_step(Some(&two), false, &ids(&["c1"]), Some("p")),
            Ok(Step::Stop(why)) if why.contains("first page")
        ));
        // After a restart the first page is new again, not a repeat.
        assert!(matches!(
            next_step(Some(&two), true, &ids(&["c1"]), Some("q")),
            Ok(Step::Continue(c)) if c.pages == 3 && c.first == fingerprint(&ids(&["c1"]))
        ));
    }

    #[test]
    fn the_page_cap_ends_the_walk_restarts_included() {
        let near = ScrollCursor {
            pages: SCROLL_PAGE_CAP - 2,
            first: 1,
            last: 2,
            param: "p".into(),
        };
        let Ok(Step::Continue(last)) = next_step(Some(&near), false, &ids(&["x"]), Some("p"))
        else {
            panic!("one page left")
        };
        assert_eq!(last.pages, SCROLL_PAGE_CAP - 1);
        assert!(matches!(
            next_step(Some(&last), false, &ids(&["y"]), Some("p")),
            Ok(Step::Stop(why)) if why.contains("cap")
        ));
        assert!(matches!(
            next_step(Some(&last), true, &ids(&["y"]), Some("q")),
            Ok(Step::Stop(_))
        ));
    }

    #[test]
    fn a_page_without_a_scroll_param_is_malformed() {
        assert!(next_step(None, true, &ids(&["c1"]), None).is_err());
        assert!(next_step(None, true, &ids(&["c1"]), Some("")).is_err());
    }

    #[test]
    fn scroll_pages_use_data_or_companies() {
        let mut current = json!({"type": "list", "data": [{"id": "1"}], "scroll_param": "p"});
        assert_eq!(list_items(&mut current).expect("data").len(), 1);
        let mut older = json!({"type": "company.list", "companies": [{"id": "1"}, {"id": "2"}]});
        assert_eq!(list_items(&mut older).expect("companies").len(), 2);
        assert!(list_items(&mut json!({"type": "list"})).is_err());
    }

    #[test]
    fn memory_continues_only_the_last_cursor_handed_out() {
        let memory = ScrollMemory::default();
        assert!(!memory.take_if("scroll:1:0:0:p"));
        memory.set(Some("scroll:1:0:0:p".into()));
        assert!(!memory.take_if("scroll:0:0:0:p"), "an older cursor");
        assert!(!memory.take_if("scroll:1:0:0:p"), "taken by the mismatch");
        memory.set(Some("scroll:2:0:0:p".into()));
        assert!(memory.take_if("scroll:2:0:0:p"));
        assert!(
            !memory.take_if("scroll:2:0:0:p"),
            "a retry after the scroll moved"
        );
    }
}
