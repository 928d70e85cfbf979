//! Incremental runs: the contacts and conversations updated within a window, found with
//! Intercom's search (`POST /contacts/search`, `POST /conversations/search`) and handed to the
//! daemon as synthetic events.
//!
//! Intercom has no events list, so each search result becomes an [`Event`] whose id is
//! `{resource}:{id}:{updated_at}`: the same state found twice (windows overlap) is the same event,
//! which the daemon applies once. A conversation found this way has no parts, so its change carries
//! no children and the daemon fetches it whole.
//!
//! Contact search matches dates by whole days, in the workspace's own time zone (which the
//! connector does not know): `> A` matches from the start of the day after A's day, `< B` before the
//! start of B's day. So the contact window is widened by [`DAY_MARGIN`] (a day and an hour, for
//! the longest day of a daylight-saving change) on each side, which covers the window whatever the
//! zone; the extra results are harmless. Conversation search compares to the second; its window
//! starts [`INDEX_LAG`] early, because Intercom's search index trails its writes and a conversation
//! updated just before the end of one window may only be found by the next search.

use serde_json::{json, Value};
use supasaasy_connector::{ConnectorError, Event, EventPage, EventWindow};

use crate::client::IntercomHttp;
use crate::listing::{self, malformed, PER_PAGE};
use crate::objects::{self, Kind, Malformed};

/// How far the contact search window reaches past each end of the daemon's window: the longest
/// calendar day (25 hours), so a day boundary in any time zone falls inside the margin.
pub(crate) const DAY_MARGIN: i64 = 25 * 3600;

/// How far the conversation search window reaches back before the daemon's window: an update
/// the search index had not taken in when the previous window was searched is found by the next.
/// The state found twice has the same event id, so the overlap costs nothing but the results.
pub(crate) const INDEX_LAG: i64 = 600;

/// The bounds `(A, B)` of the search `A < updated_at < B` that finds every object of `kind`
/// updated within `window` (`created_gt < updated_at <= created_lte`).
pub(crate) fn search_bounds(kind: Kind, window: &EventWindow) -> (i64, i64) {
    match kind {
        Kind::Contact => (
            window.created_gt.saturating_sub(DAY_MARGIN),
            window.created_lte.saturating_add(DAY_MARGIN),
        ),
        _ => (
            window.created_gt.saturating_sub(INDEX_LAG),
            window.created_lte.saturating_add(1),
        ),
    }
}

/// The body of one search page: `updated_at` between the bounds, 150 per page, from `cursor`.
pub(crate) fn search_body((after, before): (i64, i64), cursor: Option<&str>) -> Value {
    let mut pagination = json!({"per_page": PER_PAGE});
    if let Some(cursor) = cursor {
        pagination["starting_after"] = Value::from(cursor);
    }
    json!({
        "query": {
            "operator": "AND",
            "value": [
                {"field": "updated_at", "operator": ">", "value": after},
                {"field": "updated_at", "operator": "<", "value": before},
            ],
        },
        "pagination": pagination,
    })
}

/// The synthetic event of one search result.
///
/// # Errors
///
/// [`Malformed`] when the result has no id or no `updated_at`.
pub(crate) fn result_event(kind: Kind, object: Value) -> Result<Event, Malformed> {
    let id = objects::id_of(&object)?;
    let updated_at = objects::unix_field(&object, "updated_at")
        .ok_or_else(|| Malformed(format!("{} {id} has no updated_at", kind.name())))?;
    Ok(Event {
        id: format!("{}:{id}:{updated_at}", kind.name()),
        event_type: format!("{}.search", kind.name()),
        created: updated_at,
        changes: vec![objects::upsert(kind, object)?],
        ignored: false,
        ignored_reason: None,
        account: None,
        livemode: None,
        deauthorizes: false,
    })
}

/// Searches one page of the objects of `kind` (contacts or conversations) updated within
/// `window`, from `cursor`. Pass the same window for every page of a walk.
///
/// # Errors
///
/// The classified failure of the request; a malformed answer is retryable.
pub(crate) async fn events_page(
    http: &IntercomHttp,
    kind: Kind,
    cursor: Option<&str>,
    window: &EventWindow,
) -> Result<EventPage, ConnectorError> {
    let path = format!("{}/search", kind.path());
    let request = format!("POST /{path}");
    let body = search_body(search_bounds(kind, window), cursor);
    let mut answer = http.post(&path, &body).await?;
    let next_cursor =
        listing::next_cursor(&answer, cursor).map_err(|err| malformed(http, &request, err))?;
    let key = match kind {
        Kind::Conversation => "conversations",
        _ => "data",
    };
    let events = listing::list_items(&mut answer, key)
        .and_then(|items| {
            items
                .into_iter()
                .map(|item| result_event(kind, item))
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|err| malformed(http, &request, err))?;
    Ok(EventPage {
        events,
        next_cursor,
        requests: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn window(created_gt: i64, created_lte: i64) -> EventWindow {
        EventWindow {
            created_gt,
            created_lte,
        }
    }

    #[test]
    fn conversation_bounds_are_to_the_second_with_an_index_lag() {
        // 2024-03-10T12:00:00Z to 2024-03-10T18:00:00Z becomes
        // 2024-03-10T11:50:00Z to 2024-03-10T18:00:01Z.
        assert_eq!(
            search_bounds(Kind::Conversation, &window(1_710_072_000, 1_710_093_600)),
            (1_710_071_400, 1_710_093_601)
        );
    }

    #[test]
    fn contact_bounds_reach_a_day_and_an_hour_past_each_end() {
        // 2024-03-10T12:00:00Z to 2024-03-10T18:00:00Z becomes
        // 2024-03-09T11:00:00Z to 2024-03-11T19:00:00Z.
        assert_eq!(
            search_bounds(Kind::Contact, &window(1_710_072_000, 1_710_093_600)),
            (1_709_982_000, 1_710_183_600)
        );
        // Within the UTC-day window (start of gt's day minus a second, start of the day after lte).
        let (after, before) = search_bounds(Kind::Contact, &window(1_710_072_000, 1_710_093_600));
        assert!(after < 1_710_028_800);
        assert!(before >= 1_710_028_800 + DAY);
    }

    /// Intercom's whole-day matching in a zone `offset` seconds east of UTC: `> a` matches from
    /// the start of the day after a's day, `< b` before the start of b's day.
    fn day_search_matches(t: i64, a: i64, b: i64, offset: i64) -> bool {
        let day_start = |x: i64| x - (x + offset).rem_euclid(DAY);
        t >= day_start(a) + DAY && t < day_start(b)
    }

    #[test]
    fn contact_bounds_cover_the_window_in_every_time_zone() {
        let starts = [
            1_710_028_800,     // 2024-03-10T00:00:00Z
            1_710_028_800 + 1, // just after midnight UTC
            1_710_072_000,     // noon
            1_710_115_199,     // a second before midnight
            1_710_100_800,     // 20:00
        ];
        for offset in (-12 * 3600..=14 * 3600).step_by(900) {
            for gt in starts {
                for length in [1, 60, 3_600, DAY - 1, DAY, 3 * DAY + 17] {
                    let lte = gt + length;
                    let (a, b) = search_bounds(Kind::Contact, &window(gt, lte));
                    for t in [gt + 1, lte, gt + (length + 1) / 2] {
                        assert!(
                            day_search_matches(t, a, b, offset),
                            "offset {offset}, window ({gt}, {lte}], t {t}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_search_body_asks_for_updated_at_between_the_bounds() {
        assert_eq!(
            search_body((100, 200), None),
            json!({
                "query": {"operator": "AND", "value": [
                    {"field": "updated_at", "operator": ">", "value": 100},
                    {"field": "updated_at", "operator": "<", "value": 200},
                ]},
                "pagination": {"per_page": 150},
            })
        );
        assert_eq!(
            search_body((100, 200), Some("WzE3MTAw"))["pagination"],
            json!({"per_page": 150, "starting_after": "WzE3MTAw"})
        );
    }

    #[test]
    fn results_become_events_named_by_state() {
        let contact = json!({"type": "contact", "id": "c1", "created_at": 1_700_000_000, "updated_at": 1_710_080_000, "archived": true});
        let event = result_event(Kind::Contact, contact.clone()).expect("event");
        assert_eq!(event.id, "contact:c1:1710080000");
        assert_eq!(event.event_type, "contact.search");
        assert_eq!(event.created, 1_710_080_000);
        assert!(!event.ignored);
        let [change] = event.changes.as_slice() else {
            panic!("one change")
        };
        assert_eq!(change.resource, "contact");
        assert!(!change.deleted && change.record.archived);
        assert_eq!(change.record.created, Some(1_700_000_000));
        assert_eq!(change.record.payload, contact);
        assert_eq!(change.children, None);

        let conversation = json!({"type": "conversation", "id": "515", "created_at": 1, "updated_at": "1734537546"});
        let event = result_event(Kind::Conversation, conversation).expect("event");
        assert_eq!(event.id, "conversation:515:1734537546");
        assert_eq!(event.event_type, "conversation.search");
        assert_eq!(
            event.changes[0].record.collection_key,
            "intercom_conversation"
        );
        assert_eq!(
            event.changes[0].children, None,
            "the daemon fetches the parts"
        );
    }

    #[test]
    fn results_without_id_or_updated_at_are_malformed() {
        assert!(result_event(Kind::Contact, json!({"id": "c1"})).is_err());
        assert!(result_event(Kind::Contact, json!({"updated_at": 5})).is_err());
    }
}
