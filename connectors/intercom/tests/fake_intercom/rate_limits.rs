//! Rate limits: waiting out a spent window instead of earning 429s, and the delay a 429 asks for.

use std::time::{Duration, Instant};

use supasaasy_connector::{Connector, ConnectorError, ListOptions};
use supasaasy_testkit::fake_intercom::{FakeIntercom, IntercomCounts, IntercomData};

use crate::support::{connector, walk};

fn counts() -> IntercomCounts {
    IntercomCounts {
        companies: 0,
        contacts: 10,
        admins: 2,
        conversations: 24,
        parts_per_conversation: 1,
    }
}

#[tokio::test]
async fn a_spent_window_is_waited_out_not_hammered() {
    let intercom = FakeIntercom::start(IntercomData::generate(&counts())).await;
    intercom.set_rate_limit(10, Duration::from_secs(1));
    let connector = connector(&intercom);

    let started = Instant::now();
    let walk = walk(&connector, "conversation").await;
    assert_eq!(walk.requests, 25);
    assert_eq!(
        walk.ids("intercom_conversation"),
        intercom.ids("conversation")
    );
    assert_eq!(intercom.rate_limited(), 0, "no request was refused");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "25 requests at 10 a second take windows: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_429_asks_to_wait_for_the_reset() {
    let intercom = FakeIntercom::start(IntercomData::generate(&counts())).await;
    let connector = connector(&intercom);
    // A first answer opens the window the refusal reports.
    walk(&connector, "admin").await;
    intercom.fail_next(1, 429);
    match connector
        .list_page("admin", None, &ListOptions::default())
        .await
    {
        Err(ConnectorError::RateLimited {
            retry_after: Some(delay),
            message,
        }) => {
            assert!(delay >= Duration::from_secs(1), "{delay:?}");
            assert!(delay <= Duration::from_secs(11), "{delay:?}");
            assert!(message.contains("429") && message.contains("intercom_fake"));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refusal_holds_the_next_request_until_the_reset() {
    let intercom = FakeIntercom::start(IntercomData::generate(&counts())).await;
    intercom.set_rate_limit(3, Duration::from_secs(1));
    // Other clients of the same app (other daemons) spend the window.
    for _ in 0..3 {
        walk(&connector(&intercom), "admin").await;
    }
    let connector = connector(&intercom);
    let err = connector
        .list_page("admin", None, &ListOptions::default())
        .await
        .expect_err("429");
    assert!(matches!(err, ConnectorError::RateLimited { .. }), "{err:?}");
    let started = Instant::now();
    walk(&connector, "admin").await;
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the next request waited for the window: {:?}",
        started.elapsed()
    );
    assert_eq!(intercom.rate_limited(), 1);
}
