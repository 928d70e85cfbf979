//! The fake Intercom's company scroll over real HTTP: a full walk, one scroll per workspace, idle
//! expiry, a 500 that loses the scroll, and a scroll stuck on one page.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use supasaasy_testkit::fake_intercom::{
    FakeIntercom, IntercomCounts, IntercomData, SCROLL_PAGE_SIZE,
};
use support::encode;
use support::intercom::{ids, Ic};

async fn start(companies: usize) -> (FakeIntercom, Ic) {
    let counts = IntercomCounts {
        companies,
        contacts: 10,
        ..IntercomCounts::default()
    };
    let intercom = FakeIntercom::start(IntercomData::generate(&counts)).await;
    let client = Ic::of(&intercom);
    (intercom, client)
}

fn next_path(param: &str) -> String {
    format!("/companies/scroll?scroll_param={}", encode(param))
}

fn param_of(page: &Value) -> String {
    page["scroll_param"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_scroll_walks_every_company_once_then_closes() {
    let (intercom, client) = start(123).await;
    let first = client.ok("/companies/scroll").await;
    assert_eq!(first["type"], "list");
    assert_eq!(first["pages"], Value::Null);
    assert_eq!(first["total_count"], Value::Null);
    let param = param_of(&first);
    assert_eq!(intercom.open_scroll(), Some(param.clone()));
    let mut seen = ids(first["data"].as_array().unwrap());
    let mut sizes = vec![seen.len()];
    loop {
        let page = client.ok(&next_path(&param)).await;
        assert_eq!(param_of(&page), param, "the parameter stays the same");
        let data = page["data"].as_array().unwrap();
        if data.is_empty() {
            break;
        }
        sizes.push(data.len());
        seen.extend(ids(data));
    }
    assert_eq!(sizes, [SCROLL_PAGE_SIZE, SCROLL_PAGE_SIZE, 23]);
    assert_eq!(seen, intercom.ids("company"));
    // The empty page closed the scroll: its parameter is gone and a new scroll may start.
    assert_eq!(intercom.open_scroll(), None);
    let reply = client.get(&next_path(&param)).await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json()["errors"][0],
        json!({"code": "not_found", "message": "scroll parameter not found"})
    );
    let again = client.ok("/companies/scroll").await;
    assert_ne!(param_of(&again), param);
}

#[tokio::test]
async fn one_scroll_per_workspace() {
    let (intercom, client) = start(60).await;
    let param = param_of(&client.ok("/companies/scroll").await);
    let reply = client.get("/companies/scroll").await;
    assert_eq!(reply.status, 400);
    let body = reply.json();
    assert_eq!(body["type"], "error.list");
    assert_eq!(
        body["errors"][0],
        json!({"code": "scroll_exists", "message": "scroll already exists for this workspace"})
    );
    assert_eq!(
        client.get("/companies/scroll?scroll_param=").await.status,
        400
    );
    assert_eq!(client.get(&next_path("not-a-scroll")).await.status, 404);
    // The open scroll still works after the refusals.
    assert_eq!(
        client.ok(&next_path(&param)).await["data"]
            .as_array()
            .unwrap()
            .len(),
        10
    );

    intercom.expire_scroll();
    let fresh = param_of(&client.ok("/companies/scroll").await);
    assert_ne!(fresh, param);
    assert_eq!(client.get(&next_path(&param)).await.status, 404);
}

#[tokio::test]
async fn an_idle_scroll_expires() {
    let (intercom, client) = start(200).await;
    intercom.set_scroll_expiry(Duration::from_millis(400));
    let param = param_of(&client.ok("/companies/scroll").await);
    // Used within the expiry, it stays open.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(client.get(&next_path(&param)).await.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(intercom.open_scroll(), None);
    let reply = client.get(&next_path(&param)).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["errors"][0]["code"], "not_found");
    assert_eq!(client.get("/companies/scroll").await.status, 200);
}

#[tokio::test]
async fn a_500_loses_the_scroll_and_other_failures_do_not() {
    let (intercom, client) = start(120).await;
    let param = param_of(&client.ok("/companies/scroll").await);
    intercom.fail_scroll_next(1, 500);
    let reply = client.get(&next_path(&param)).await;
    assert_eq!(reply.status, 500);
    let message = reply.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("restart the scroll"), "{message}");
    assert_eq!(client.get(&next_path(&param)).await.status, 404);
    // No scroll is open any more, so starting again works at once.
    let restarted = client.ok("/companies/scroll").await;
    let param = param_of(&restarted);
    assert_eq!(
        restarted["data"].as_array().unwrap().len(),
        SCROLL_PAGE_SIZE
    );

    intercom.fail_scroll_next(2, 503);
    for _ in 0..2 {
        assert_eq!(client.get(&next_path(&param)).await.status, 503);
    }
    let page = client.ok(&next_path(&param)).await;
    assert_eq!(page["data"].as_array().unwrap().len(), SCROLL_PAGE_SIZE);
    // Scroll faults touch nothing else.
    intercom.fail_scroll_next(1, 500);
    assert_eq!(client.get("/contacts").await.status, 200);
    assert_eq!(client.get(&next_path(&param)).await.status, 500);
    assert_eq!(intercom.requests_to("/companies/scroll"), 8);
}

#[tokio::test]
async fn a_stuck_scroll_repeats_itself_forever() {
    let (intercom, client) = start(120).await;
    intercom.stuck_scroll(true);
    let first = client.ok("/companies/scroll").await;
    let param = param_of(&first);
    assert_eq!(first["data"].as_array().unwrap().len(), SCROLL_PAGE_SIZE);
    // A client that stops when a page brings nothing new notices at the second page.
    let mut seen: HashSet<String> = ids(first["data"].as_array().unwrap()).into_iter().collect();
    let mut pages = 1;
    loop {
        let page = client.ok(&next_path(&param)).await;
        assert_eq!(page, first, "same parameter, same data");
        pages += 1;
        let new = ids(page["data"].as_array().unwrap())
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .count();
        if new == 0 || pages > 20 {
            break;
        }
    }
    assert_eq!(pages, 2);
    // Unstuck, the same scroll carries on from where it stood.
    intercom.stuck_scroll(false);
    let page = client.ok(&next_path(&param)).await;
    assert_eq!(
        page["data"][0]["id"],
        intercom.ids("company")[SCROLL_PAGE_SIZE].as_str()
    );
}
