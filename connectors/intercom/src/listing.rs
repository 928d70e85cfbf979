//! Full listings of admins, contacts and conversations, and the fetch of one object.
//!
//! Contacts and conversations page with Intercom's cursor (`pages.next.starting_after`), which is
//! also the cursor handed to the daemon: asking again with it gives the same page, so a walk can
//! resume from any cursor. Admins come in one unpaginated answer. A listed conversation lacks its
//! parts, so each one of a page is fetched whole (at most [`FETCH_CONCURRENCY`] at once) and its
//! record is followed by one record per part.
//!
//! Invariants: a cursor that does not move is an error, never a loop; `sync_from` is applied here
//! (Intercom's lists cannot filter by creation), before any conversation is fetched.

use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;
use supasaasy_connector::{Change, ConnectorError, ListOptions, Page, Record, Skipped};

use crate::client::IntercomHttp;
use crate::objects::{self, Kind, Malformed};

/// The largest page Intercom serves for contacts, conversations and searches.
pub(crate) const PER_PAGE: u32 = 150;

/// Conversations of one page fetched at once.
pub(crate) const FETCH_CONCURRENCY: usize = 8;

/// The objects of a list answer, under the key its endpoint uses.
pub(crate) fn list_items(answer: &mut Value, key: &str) -> Result<Vec<Value>, Malformed> {
    match answer.get_mut(key).map(Value::take) {
        Some(Value::Array(items)) => Ok(items),
        Some(Value::Null) | None => Err(Malformed(format!("the list has no {key:?} array"))),
        Some(_) => Err(Malformed(format!("{key:?} is not an array"))),
    }
}

/// The `starting_after` of the next page (`pages.next.starting_after`), `None` on the last page.
/// An older shape gives `pages.next` as a URL carrying `starting_after`.
pub(crate) fn next_starting_after(answer: &Value) -> Option<String> {
    let next = answer.get("pages")?.get("next")?;
    let cursor = match next {
        Value::Object(fields) => fields.get("starting_after")?.as_str()?.to_owned(),
        Value::String(url) => {
            let query = url.split_once('?')?.1;
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("starting_after="))?
                .to_owned()
        }
        _ => return None,
    };
    (!cursor.is_empty()).then_some(cursor)
}

/// The next cursor of a page walked from `cursor`.
///
/// # Errors
///
/// [`Malformed`] when Intercom hands back the cursor the page was asked with: it would page
/// forever.
pub(crate) fn next_cursor(
    answer: &Value,
    cursor: Option<&str>,
) -> Result<Option<String>, Malformed> {
    let next = next_starting_after(answer);
    if next.is_some() && next.as_deref() == cursor {
        return Err(Malformed(format!(
            "the next page starts after {:?} again",
            cursor.unwrap_or_default()
        )));
    }
    Ok(next)
}

/// The query of one page of a cursor list.
pub(crate) fn page_query(cursor: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = vec![("per_page", PER_PAGE.to_string())];
    if let Some(cursor) = cursor {
        query.push(("starting_after", cursor.to_owned()));
    }
    query
}

/// Whether an object passes `sync_from` (`created_gte`); one that does not say when it was
/// created is kept.
pub(crate) fn wanted(object: &Value, options: &ListOptions) -> bool {
    match (
        options.created_gte,
        objects::unix_field(object, "created_at"),
    ) {
        (Some(from), Some(created)) => created >= from,
        _ => true,
    }
}

/// Lists every admin (`GET /admins`, one page).
///
/// # Errors
///
/// The classified failure of the request; a malformed answer is retryable.
pub(crate) async fn admins_page(
    http: &IntercomHttp,
    options: &ListOptions,
) -> Result<Page, ConnectorError> {
    let request = "GET /admins";
    let mut answer = http.get("admins", &[]).await?;
    let admins = list_items(&mut answer, "admins").map_err(|err| malformed(http, request, err))?;
    let records =
        records_of(Kind::Admin, admins, options).map_err(|e| malformed(http, request, e))?;
    Ok(Page {
        records,
        next_cursor: None,
        requests: 1,
        ..Page::default()
    })
}

/// Lists one page of contacts (`GET /contacts`).
///
/// # Errors
///
/// The classified failure of the request; a malformed answer is retryable.
pub(crate) async fn contacts_page(
    http: &IntercomHttp,
    cursor: Option<&str>,
    options: &ListOptions,
) -> Result<Page, ConnectorError> {
    let request = "GET /contacts";
    let mut answer = http.get("contacts", &page_query(cursor)).await?;
    let next_cursor = next_cursor(&answer, cursor).map_err(|err| malformed(http, request, err))?;
    let contacts = list_items(&mut answer, "data").map_err(|err| malformed(http, request, err))?;
    let records =
        records_of(Kind::Contact, contacts, options).map_err(|e| malformed(http, request, e))?;
    Ok(Page {
        records,
        next_cursor,
        requests: 1,
        ..Page::default()
    })
}

/// Lists one page of conversations (`GET /conversations`) and fetches each one whole: the page
/// holds every conversation's record followed by its parts. A conversation deleted between the
/// list and its fetch is left out (the run's sweep tombstones it).
///
/// # Errors
///
/// The classified failure of the first request that failed; a malformed answer is retryable.
pub(crate) async fn conversations_page(
    http: &IntercomHttp,
    cursor: Option<&str>,
    options: &ListOptions,
) -> Result<Page, ConnectorError> {
    let request = "GET /conversations";
    let mut answer = http.get("conversations", &page_query(cursor)).await?;
    let next_cursor = next_cursor(&answer, cursor).map_err(|err| malformed(http, request, err))?;
    let listed =
        list_items(&mut answer, "conversations").map_err(|err| malformed(http, request, err))?;
    let ids = listed
        .iter()
        .filter(|conversation| wanted(conversation, options))
        .map(|conversation| {
            objects::id_of(conversation)
                .and_then(|id| checked_id(&id).map(|()| id))
                .map_err(|err| malformed(http, request, err))
        })
        .collect::<Result<Vec<String>, _>>()?;

    let requests = 1 + u32::try_from(ids.len()).unwrap_or(u32::MAX);
    let fetched: Vec<(String, Fetched)> = stream::iter(ids)
        .map(|id| async move { fetch_conversation(http, &id).await.map(|f| (id, f)) })
        .buffered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;

    let mut page = Page {
        next_cursor,
        requests,
        ..Page::default()
    };
    for (id, fetched) in fetched {
        let conversation = match fetched {
            Fetched::Object(conversation) => conversation,
            Fetched::Gone => continue,
            Fetched::Unusable(reason) => {
                page.skipped.push(Skipped {
                    collection_key: Kind::Conversation.collection_key(),
                    external_id: id,
                    reason,
                });
                continue;
            }
        };
        match objects::conversation_records(conversation) {
            Ok((record, parts)) => {
                page.records.push(record);
                page.records.extend(parts);
            }
            Err(Malformed(why)) => page.skipped.push(Skipped {
                collection_key: Kind::Conversation.collection_key(),
                external_id: id,
                reason: format!("Intercom answered GET /conversations/{{id}} with a malformed conversation: {why}"),
            }),
        }
    }
    Ok(page)
}

/// What fetching one listed conversation came to.
enum Fetched {
    /// The conversation, whole.
    Object(Value),
    /// Intercom no longer has it.
    Gone,
    /// Intercom answered something that is not it (another object): left out of the page, not
    /// asked again now.
    Unusable(String),
}

/// GETs one whole conversation.
async fn fetch_conversation(http: &IntercomHttp, id: &str) -> Result<Fetched, ConnectorError> {
    match get_object(http, Kind::Conversation, id).await {
        Ok(conversation) => Ok(Fetched::Object(conversation)),
        Err(failure) if failure.is_not_found() => {
            tracing::debug!(app_key = %http.app_key(), id, "a listed conversation is gone");
            Ok(Fetched::Gone)
        }
        Err(failure) if failure.is_another_object() => {
            tracing::warn!(app_key = %http.app_key(), id, "Intercom answered another object for a listed conversation: left out");
            Ok(Fetched::Unusable(failure.error.to_string()))
        }
        Err(failure) => Err(failure.error),
    }
}

/// GETs `/{path}/{id}` and checks the answer is that object.
async fn get_object(
    http: &IntercomHttp,
    kind: Kind,
    id: &str,
) -> Result<Value, crate::client::Failure> {
    let path = format!("{}/{id}", kind.path());
    let object = http.get(&path, &[]).await?;
    match objects::id_of(&object) {
        Ok(found) if found == id => Ok(object),
        _ => Err(crate::client::Failure {
            status: Some(200),
            code: Some(crate::client::ANOTHER_OBJECT.into()),
            unsent: false,
            error: malformed(
                http,
                &format!("GET /{path}"),
                Malformed("the answer is another object".into()),
            ),
        }),
    }
}

/// Fetches one object as a change: a conversation with the complete set of its parts; an object
/// Intercom no longer has (404 with an Intercom error) as a deletion.
///
/// # Errors
///
/// [`ConnectorError::Fatal`] for an id that is not an Intercom id, otherwise the classified
/// failure of the request; a malformed answer is retryable.
pub(crate) async fn fetch(
    http: &IntercomHttp,
    kind: Kind,
    id: &str,
) -> Result<Change, ConnectorError> {
    checked_id(id).map_err(|Malformed(why)| ConnectorError::Fatal {
        message: format!(
            "cannot fetch {} {id:?} for app {}: {why}",
            kind.name(),
            http.app_key()
        ),
    })?;
    let request = format!("GET /{}/{id}", kind.path());
    let object = match get_object(http, kind, id).await {
        Ok(object) => object,
        Err(failure) if failure.is_not_found() => return Ok(objects::gone(kind, id)),
        Err(failure) => return Err(failure.error),
    };
    let change = match kind {
        Kind::Conversation => objects::conversation_change(object),
        _ => objects::upsert(kind, object),
    };
    change.map_err(|err| malformed(http, &request, err))
}

/// An Intercom object id: 1 to 255 of letters, digits, `_`, `.` and `-`, so also a path segment
/// that needs no escaping.
pub(crate) fn checked_id(id: &str) -> Result<(), Malformed> {
    let fits = !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && id != "."
        && id != "..";
    if fits {
        Ok(())
    } else {
        Err(Malformed("not an Intercom object id".into()))
    }
}

fn records_of(
    kind: Kind,
    items: Vec<Value>,
    options: &ListOptions,
) -> Result<Vec<Record>, Malformed> {
    items
        .into_iter()
        .filter(|item| wanted(item, options))
        .map(|item| objects::record(kind, item))
        .collect()
}

/// A malformed answer, worth asking for again.
pub(crate) fn malformed(
    http: &IntercomHttp,
    request: &str,
    Malformed(why): Malformed,
) -> ConnectorError {
    ConnectorError::Retryable {
        message: format!(
            "Intercom sent a malformed answer for app {} on {request}: {why}",
            http.app_key()
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_next_cursor_comes_from_pages_next() {
        let answer = json!({"type": "list", "data": [], "pages": {"type": "pages", "next": {"page": 2, "starting_after": "WzE3MzQ1Mzc0MzcwMDAsIjY3NjIiXQ=="}}});
        assert_eq!(
            next_starting_after(&answer).as_deref(),
            Some("WzE3MzQ1Mzc0MzcwMDAsIjY3NjIiXQ==")
        );
        for last in [
            json!({"type": "list", "data": [], "pages": {"type": "pages", "page": 3, "total_pages": 3}}),
            json!({"pages": {"next": null}}),
            json!({"pages": {"next": {"starting_after": null}}}),
            json!({"pages": {"next": {"starting_after": ""}}}),
            json!({"pages": null}),
            json!({}),
        ] {
            assert_eq!(next_starting_after(&last), None, "{last}");
        }
        let url = json!({"pages": {"next": "https://api.intercom.io/contacts?per_page=150&starting_after=abc"}});
        assert_eq!(next_starting_after(&url).as_deref(), Some("abc"));
    }

    #[test]
    fn a_cursor_that_does_not_move_is_malformed() {
        let answer = json!({"pages": {"next": {"starting_after": "c2"}}});
        assert_eq!(next_cursor(&answer, Some("c1")), Ok(Some("c2".into())));
        assert_eq!(next_cursor(&answer, None), Ok(Some("c2".into())));
        assert!(next_cursor(&answer, Some("c2")).is_err());
        assert_eq!(next_cursor(&json!({}), Some("c2")), Ok(None));
    }

    #[test]
    fn page_queries_ask_for_150_from_the_cursor() {
        assert_eq!(page_query(None), vec![("per_page", "150".to_owned())]);
        assert_eq!(
            page_query(Some("abc")),
            vec![
                ("per_page", "150".to_owned()),
                ("starting_after", "abc".to_owned())
            ]
        );
    }

    #[test]
    fn list_items_come_from_the_endpoint_key() {
        let mut answer = json!({"type": "admin.list", "admins": [{"id": "1"}]});
        assert_eq!(
            list_items(&mut answer, "admins"),
            Ok(vec![json!({"id": "1"})])
        );
        assert!(list_items(&mut json!({"data": {}}), "data").is_err());
        assert!(list_items(&mut json!({}), "conversations").is_err());
    }

    #[test]
    fn sync_from_drops_older_objects_and_keeps_undated_ones() {
        let options = ListOptions {
            created_gte: Some(1_700_000_000),
            ..ListOptions::default()
        };
        assert!(wanted(&json!({"created_at": 1_700_000_000}), &options));
        assert!(!wanted(&json!({"created_at": 1_699_999_999}), &options));
        assert!(wanted(&json!({"name": "admin"}), &options));
        assert!(wanted(&json!({"created_at": 1}), &ListOptions::default()));
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_path() {
        for good in [
            "6762f0dd1bb69f9f2193bb83",
            "991267466",
            "a.b-c_d",
            &"x".repeat(255),
        ] {
            assert_eq!(checked_id(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a?b=1",
            "a%2F",
            "é",
            "a#b",
            &"x".repeat(256),
        ] {
            assert!(checked_id(bad).is_err(), "{bad:?}");
        }
    }
}
