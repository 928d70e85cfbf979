//! Incremental runs: search windows over contacts (whole days) and conversations (seconds).

use std::collections::BTreeSet;

use serde_json::json;
use supasaasy_connector::{Connector, EventWindow};
use supasaasy_testkit::fake_intercom::{FakeIntercom, IntercomCounts, IntercomData};

use crate::support::{connector, events};

/// 2025-06-15T12:00:00Z.
const NOW: i64 = 1_749_988_800;
const DAY: i64 = 86_400;

async fn fake() -> FakeIntercom {
    let intercom = FakeIntercom::start(IntercomData::generate_at(
        &IntercomCounts {
            companies: 3,
            contacts: 400,
            admins: 2,
            conversations: 40,
            parts_per_conversation: 2,
        },
        NOW - 30 * DAY,
    ))
    .await;
    intercom.set_clock(Some(NOW));
    intercom
}

fn window(created_gt: i64, created_lte: i64) -> EventWindow {
    EventWindow {
        created_gt,
        created_lte,
    }
}

fn touch(intercom: &FakeIntercom, resource: &str, ids: &[String]) {
    for id in ids {
        assert!(intercom.update(resource, id, |o| o["name"] = json!("touched")));
    }
}

#[tokio::test]
async fn contacts_updated_within_the_window_are_found_across_pages() {
    let intercom = fake().await;
    let connector = connector(&intercom);
    let touched: Vec<String> = intercom.ids("contact").into_iter().step_by(2).collect();
    touch(&intercom, "contact", &touched);
    assert_eq!(touched.len(), 200);

    let (found, pages) = events(&connector, "contact", window(NOW - 3_600, NOW)).await;
    assert_eq!(pages, 2, "150 a page");
    let ids: BTreeSet<&str> = found
        .iter()
        .map(|e| e.changes[0].record.external_id.as_str())
        .collect();
    assert_eq!(ids, touched.iter().map(String::as_str).collect());
    for event in &found {
        let change = &event.changes[0];
        assert_eq!(event.event_type, "contact.search");
        assert_eq!(event.created, NOW);
        assert_eq!(
            event.id,
            format!("contact:{}:{NOW}", change.record.external_id)
        );
        assert!(!event.ignored && !change.deleted);
        assert_eq!(change.record.collection_key, "intercom_contact");
        assert_eq!(change.record.payload.value()["name"], "touched");
    }
}

#[tokio::test]
async fn contact_windows_are_widened_to_whole_days() {
    let intercom = fake().await;
    let connector = connector(&intercom);
    let ids = intercom.ids("contact");
    touch(&intercom, "contact", &ids[..3]);

    // A window that ends a second before the update still finds it (the day is the unit)...
    let (found, _) = events(&connector, "contact", window(NOW - 60, NOW - 1)).await;
    assert_eq!(found.len(), 3);
    // ...and one that starts a second after it, too: the same events again, deduped by id.
    let (later, _) = events(&connector, "contact", window(NOW, NOW + 600)).await;
    let first: BTreeSet<&str> = found.iter().map(|e| e.id.as_str()).collect();
    let second: BTreeSet<&str> = later.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(first, second);
    // Three days later, nothing.
    let (none, pages) = events(
        &connector,
        "contact",
        window(NOW + 3 * DAY, NOW + 3 * DAY + 600),
    )
    .await;
    assert!(none.is_empty());
    assert_eq!(pages, 1);
}

#[tokio::test]
async fn conversations_are_found_to_the_second_and_fetched_whole() {
    let intercom = fake().await;
    let connector = connector(&intercom);
    let ids = intercom.ids("conversation");
    touch(&intercom, "conversation", &ids[5..8]);

    let (found, _) = events(&connector, "conversation", window(NOW - 1, NOW)).await;
    let found_ids: Vec<&str> = found
        .iter()
        .map(|e| e.changes[0].record.external_id.as_str())
        .collect();
    assert_eq!(
        found_ids,
        ids[5..8].iter().map(String::as_str).collect::<Vec<_>>()
    );
    for event in &found {
        assert_eq!(event.event_type, "conversation.search");
        let change = &event.changes[0];
        assert_eq!(change.children, None, "the daemon fetches the parts");
        let whole = connector
            .fetch_object("conversation", &change.record.external_id, None)
            .await
            .expect("fetch");
        assert_eq!(whole.children.expect("parts").records.len(), 2);
    }

    // Well after the update: not found.
    let (none, _) = events(&connector, "conversation", window(NOW + 700, NOW + 800)).await;
    assert!(none.is_empty());
    // Before it: not found (the upper bound is one second past the window, as Intercom's `<`
    // may be strict).
    let (none, _) = events(&connector, "conversation", window(NOW - 100, NOW - 2)).await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_lagging_search_index_is_caught_by_the_next_window() {
    let intercom = fake().await;
    let connector = connector(&intercom);
    let id = intercom.ids("conversation")[0].clone();
    touch(&intercom, "conversation", std::slice::from_ref(&id));

    // Searched a minute later, the index has not taken the update in yet.
    intercom.set_search_lag(120);
    intercom.set_clock(Some(NOW + 60));
    let (missed, _) = events(&connector, "conversation", window(NOW - 300, NOW)).await;
    assert!(missed.is_empty());

    // The next window starts where that one ended, but reaches back over the index lag.
    intercom.set_clock(Some(NOW + 360));
    let (caught, _) = events(&connector, "conversation", window(NOW, NOW + 300)).await;
    let [event] = caught.as_slice() else {
        panic!("expected the lagging update, got {caught:?}")
    };
    assert_eq!(event.id, format!("conversation:{id}:{NOW}"));
}
