//! The company scroll's faults: another scroll open, a 500, an expired or resumed scroll_param, a
//! scroll that does not move on, and answers that leave the scroll where it was.

use std::collections::BTreeSet;
use std::time::Duration;

use supasaasy_connector::{Connector, ConnectorError, ListOptions, Page};
use supasaasy_intercom::IntercomConnector;
use supasaasy_testkit::fake_intercom::{
    FakeIntercom, IntercomCounts, IntercomData, SCROLL_PAGE_SIZE,
};

use crate::support::{connector, sorted, walk, walk_patiently};

const COMPANIES: usize = 3 * SCROLL_PAGE_SIZE + 11;

async fn fake() -> FakeIntercom {
    FakeIntercom::start(IntercomData::generate(&IntercomCounts {
        companies: COMPANIES,
        contacts: 0,
        admins: 1,
        conversations: 0,
        parts_per_conversation: 0,
    }))
    .await
}

async fn page(connector: &IntercomConnector, cursor: Option<&str>) -> Result<Page, ConnectorError> {
    connector
        .list_page("company", cursor, &ListOptions::default())
        .await
}

fn ids(page: &Page) -> Vec<String> {
    page.records.iter().map(|r| r.external_id.clone()).collect()
}

fn all_ids(intercom: &FakeIntercom) -> Vec<String> {
    sorted(intercom.ids("company"))
}

fn distinct(ids: Vec<String>) -> Vec<String> {
    ids.into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn cursors_name_the_scroll() {
    let intercom = fake().await;
    let first = page(&connector(&intercom), None).await.expect("page");
    let cursor = first.next_cursor.clone().expect("more");
    let param = intercom.open_scroll().expect("an open scroll");
    assert!(cursor.starts_with("scroll:1:"), "{cursor}");
    assert!(cursor.ends_with(&format!(":{param}")), "{cursor}");
    assert_eq!(first.records.len(), SCROLL_PAGE_SIZE);
}

#[tokio::test]
async fn another_open_scroll_is_a_short_rate_limit() {
    let intercom = fake().await;
    let walking = connector(&intercom);
    let first = page(&walking, None).await.expect("page");

    let other = connector(&intercom);
    match page(&other, None).await {
        Err(ConnectorError::RateLimited { retry_after, .. }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(5)));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }

    // The first walk goes on undisturbed, and once it ends the other may scroll.
    let rest = walk_patiently(&walking, "company", first.next_cursor.clone()).await;
    let mut seen = ids(&first);
    seen.extend(rest.ids("intercom_company"));
    assert_eq!(sorted(seen), all_ids(&intercom));
    assert!(rest.errors.is_empty(), "{:?}", rest.errors);
    let again = walk(&other, "company").await;
    assert_eq!(again.sorted_ids("intercom_company"), all_ids(&intercom));
}

#[tokio::test]
async fn a_500_restarts_the_scroll_on_the_retry() {
    let intercom = fake().await;
    let connector = connector(&intercom);
    let first = page(&connector, None).await.expect("page");
    let second = page(&connector, first.next_cursor.as_deref())
        .await
        .expect("page");
    let cursor = second.next_cursor.clone().expect("more");

    intercom.fail_scroll_next(1, 500);
    let err = page(&connector, Some(&cursor)).await.expect_err("500");
    assert!(matches!(err, ConnectorError::Retryable { .. }), "{err:?}");
    assert_eq!(intercom.open_scroll(), None, "the 500 lost the scroll");

    // The retry with the same cursor starts a new scroll from the first company.
    let restarted = page(&connector, Some(&cursor)).await.expect("restart");
    assert_eq!(ids(&restarted), ids(&first));
    let rest = walk_patiently(&connector, "company", restarted.next_cursor.clone()).await;
    let mut seen = ids(&first);
    seen.extend(ids(&second));
    seen.extend(ids(&restarted));
    seen.extend(rest.ids("intercom_company"));
    assert_eq!(distinct(seen), all_ids(&intercom));
    assert!(rest.errors.is_empty(), "{:?}", rest.errors);
}

#[tokio::test]
async fn an_expired_scroll_param_restarts_at_once() {
    let intercom = fake().await;
    let connector = connector(&intercom);
    let first = page(&connector, None).await.expect("page");
    intercom.expire_scroll();

    let restarted = page(&connector, first.next_cursor.as_deref())
        .await
        .expect("restart in the same call");
    assert_eq!(ids(&restarted), ids(&first));
    assert_eq!(
        restarted.requests, 2,
        "the stale scroll_param, then a new scroll"
    );
    let rest = walk_patiently(&connector, "company", restarted.next_cursor.clone()).await;
    let mut seen = ids(&restarted);
    seen.extend(rest.ids("intercom_company"));
    assert_eq!(
        sorted(seen),
        all_ids(&intercom),
        "each company once after the restart"
    );
}

#[tokio::test]
async fn a_cursor_resumed_elsewhere_starts_a_new_scroll() {
    let intercom = fake().await;
    let crashed = connector(&intercom);
    let first = page(&crashed, None).await.expect("page");
    // It had fetched the second page (the scroll moved past it) before it died.
    page(&crashed, first.next_cursor.as_deref())
        .await
        .expect("page");
    // The daemon committed the first page only; another daemon takes over.
    let committed = first.next_cursor.clone().expect("more");
    drop(crashed);

    let resumed = connector(&intercom);
    let before = intercom.requests_to("/companies/scroll");
    match page(&resumed, Some(&committed)).await {
        Err(ConnectorError::RateLimited { .. }) => {}
        other => panic!("the old scroll is still open: expected RateLimited, got {other:?}"),
    }
    assert_eq!(
        intercom.requests_to("/companies/scroll") - before,
        1,
        "the old scroll_param is not used: the scroll may have moved past the committed page"
    );
    intercom.expire_scroll();
    let rest = walk_patiently(&resumed, "company", Some(committed)).await;
    let mut seen = ids(&first);
    seen.extend(rest.ids("intercom_company"));
    assert_eq!(distinct(seen), all_ids(&intercom));
    assert!(
        rest.ids("intercom_company").starts_with(&ids(&first)),
        "from the beginning again"
    );
}

#[tokio::test]
async fn an_ambiguous_failure_restarts_once_the_old_scroll_expires() {
    let intercom = fake().await;
    intercom.set_scroll_expiry(Duration::from_millis(300));
    let connector = connector(&intercom);
    let first = page(&connector, None).await.expect("page");
    // A 503 may come after Intercom moved the scroll on: the retry must not trust the param.
    intercom.fail_scroll_next(1, 503);
    let rest = walk_patiently(&connector, "company", first.next_cursor.clone()).await;
    assert!(matches!(rest.errors[0], ConnectorError::Retryable { .. }));
    assert!(rest
        .errors
        .iter()
        .skip(1)
        .all(|e| matches!(e, ConnectorError::RateLimited { .. })));
    let mut seen = ids(&first);
    seen.extend(rest.ids("intercom_company"));
    assert_eq!(distinct(seen), all_ids(&intercom));
}

#[tokio::test]
async fn a_rate_limit_leaves_the_scroll_in_place() {
    let intercom = fake().await;
    // A short window: the connector holds its next request until the window resets.
    intercom.set_rate_limit(10_000, Duration::from_secs(1));
    let connector = connector(&intercom);
    let first = page(&connector, None).await.expect("page");
    let cursor = first.next_cursor.clone().expect("more");
    intercom.fail_next(1, 429);
    let err = page(&connector, Some(&cursor)).await.expect_err("429");
    assert!(matches!(err, ConnectorError::RateLimited { .. }), "{err:?}");
    let rest = walk_patiently(&connector, "company", Some(cursor)).await;
    let mut seen = ids(&first);
    seen.extend(rest.ids("intercom_company"));
    assert_eq!(
        seen.len(),
        COMPANIES,
        "no restart: each company exactly once"
    );
    assert_eq!(sorted(seen), all_ids(&intercom));
}

#[tokio::test]
async fn a_stuck_scroll_fails_the_walk_instead_of_spinning() {
    let intercom = fake().await;
    intercom.stuck_scroll(true);
    let connector = connector(&intercom);
    let first = connector
        .list_page("company", None, &ListOptions::default())
        .await
        .expect("the first page");
    assert_eq!(first.records.len(), SCROLL_PAGE_SIZE);
    let err = connector
        .list_page(
            "company",
            first.next_cursor.as_deref(),
            &ListOptions::default(),
        )
        .await
        .expect_err("the repeat is seen on the second page");
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("did not progress"), "{err}");
}
