//! The fake Intercom's search over real HTTP: whole days for contacts, seconds for conversations,
//! AND/OR groups, sorting, pagination, refusals and index lag.

mod support;

use serde_json::{json, Value};
use supasaasy_testkit::fake_intercom::{example, FakeIntercom, IntercomCounts, IntercomData};
use support::intercom::{ids, Ic};

/// Midnight UTC starting a day (2026-01-01).
const D: i64 = 1_767_225_600;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Objects updated at: D 00:00:00, D 10:00, D 23:59:59, D+1 00:00, D+1 12:00.
const TIMES: [(&str, i64); 5] = [
    ("a", D),
    ("b", D + 10 * HOUR),
    ("c", D + DAY - 1),
    ("d", D + DAY),
    ("e", D + DAY + 12 * HOUR),
];

async fn dated() -> (FakeIntercom, Ic) {
    let intercom = FakeIntercom::start(IntercomData::empty()).await;
    for (i, (name, at)) in TIMES.into_iter().enumerate() {
        let mut contact = example("contact");
        contact["id"] = json!(format!("{:024x}", i + 1));
        contact["name"] = json!(name);
        contact["created_at"] = json!(D - 30 * DAY);
        contact["updated_at"] = json!(at);
        intercom.upsert("contact", contact);
        let mut conversation = example("conversation");
        conversation["id"] = json!((i + 1).to_string());
        conversation["title"] = json!(name);
        conversation["created_at"] = json!(D - 30 * DAY);
        conversation["updated_at"] = json!(at);
        intercom.upsert("conversation", conversation);
    }
    let client = Ic::of(&intercom);
    (intercom, client)
}

fn filter(field: &str, op: &str, value: i64) -> Value {
    json!({"field": field, "operator": op, "value": value})
}

async fn names(client: &Ic, what: &str, query: Value) -> Vec<String> {
    let (path, key, name) = match what {
        "contacts" => ("/contacts/search", "data", "name"),
        _ => ("/conversations/search", "conversations", "title"),
    };
    let found = client.search_all(path, key, query, 2).await;
    found
        .iter()
        .map(|o| o[name].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn contact_search_matches_whole_utc_days() {
    let (_intercom, client) = dated().await;
    let q = |op, at| filter("updated_at", op, at);
    // `>` starts at the next day: 10:00 on day D is truncated to D, so nothing of day D matches.
    assert_eq!(
        names(&client, "contacts", q(">", D + 10 * HOUR)).await,
        ["d", "e"]
    );
    assert_eq!(
        names(&client, "contacts", q("=", D + 15 * HOUR)).await,
        ["a", "b", "c"]
    );
    assert_eq!(
        names(&client, "contacts", q("<", D + DAY + 12 * HOUR)).await,
        ["a", "b", "c"]
    );
    assert_eq!(
        names(&client, "contacts", q(">", D - 1)).await,
        ["a", "b", "c", "d", "e"]
    );
    // Values may come as strings, as in the API description's example.
    let as_text = json!({"field": "updated_at", "operator": ">", "value": (D - 1).to_string()});
    assert_eq!(names(&client, "contacts", as_text).await.len(), 5);
    for op in [">=", "<=", "!="] {
        let body = json!({"query": q(op, D)});
        let reply = client.post("/contacts/search", &body).await;
        assert_eq!(reply.status, 400, "{op}");
        assert_eq!(reply.json()["errors"][0]["code"], "parameter_invalid");
    }
}

#[tokio::test]
async fn conversation_search_compares_seconds_and_includes_the_value() {
    let (_intercom, client) = dated().await;
    let q = |op, at| filter("updated_at", op, at);
    assert_eq!(
        names(&client, "conversations", q(">", D + 10 * HOUR)).await,
        ["b", "c", "d", "e"]
    );
    assert_eq!(
        names(&client, "conversations", q(">", D + 10 * HOUR + 1)).await,
        ["c", "d", "e"]
    );
    assert_eq!(
        names(&client, "conversations", q("<", D + 10 * HOUR)).await,
        ["a", "b"]
    );
    assert_eq!(
        names(&client, "conversations", q("=", D + DAY - 1)).await,
        ["c"]
    );
    assert_eq!(
        names(&client, "conversations", q(">=", D + DAY)).await,
        ["d", "e"]
    );
    assert_eq!(
        names(&client, "conversations", q("!=", D)).await,
        ["b", "c", "d", "e"]
    );
    let page = client
        .ok_post("/conversations/search", &json!({"query": q(">", D)}))
        .await;
    assert_eq!(page["type"], "conversation.list");
    assert_eq!(page["total_count"], 5);
    assert_eq!(page["pages"]["per_page"], 20);
    assert!(page["conversations"][0].get("conversation_parts").is_none());
}

#[tokio::test]
async fn groups_nest_and_sorting_is_honoured() {
    let (_intercom, client) = dated().await;
    // (updated at D+1 00:00) OR (updated before D 12:00 AND created before D): conversations
    // read it to the second; contacts read `=` as the whole of day D+1 and `<` as "before day D".
    let query = json!({"operator": "OR", "value": [
        filter("updated_at", "=", D + DAY),
        {"operator": "AND", "value": [
            filter("updated_at", "<", D + 12 * HOUR),
            filter("created_at", "<", D),
        ]},
    ]});
    assert_eq!(
        names(&client, "conversations", query.clone()).await,
        ["a", "b", "d"]
    );
    assert_eq!(names(&client, "contacts", query).await, ["d", "e"]);

    let sorted = json!({
        "query": filter("updated_at", ">", D - 1),
        "sort": {"field": "updated_at", "order": "descending"},
        "pagination": {"per_page": 3},
    });
    let page = client.ok_post("/contacts/search", &sorted).await;
    let first: Vec<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(first, ["e", "d", "c"]);
    let mut next = sorted.clone();
    next["pagination"]["starting_after"] = page["pages"]["next"]["starting_after"].clone();
    let page = client.ok_post("/contacts/search", &next).await;
    let rest: Vec<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(rest, ["b", "a"]);
    assert_eq!(page["pages"]["page"], 2);
    assert!(page["pages"].get("next").is_none());
}

#[tokio::test]
async fn search_walks_large_results_once() {
    let counts = IntercomCounts {
        contacts: 700,
        conversations: 300,
        ..IntercomCounts::default()
    };
    let intercom = FakeIntercom::start(IntercomData::generate(&counts)).await;
    let client = Ic::of(&intercom);
    let since = intercom.now() - 120 * DAY;
    let query = filter("updated_at", ">", since);
    let found = client
        .search_all("/contacts/search", "data", query.clone(), 50)
        .await;
    let want: Vec<String> = intercom
        .ids("contact")
        .into_iter()
        .filter(|id| {
            let at = intercom.get("contact", id).unwrap()["updated_at"]
                .as_i64()
                .unwrap();
            at.div_euclid(DAY) > since.div_euclid(DAY)
        })
        .collect();
    assert!(want.len() > 50 && want.len() < 700, "{}", want.len());
    assert_eq!(ids(&found), want);
    let found = client
        .search_all("/conversations/search", "conversations", query, 7)
        .await;
    let want: Vec<String> = intercom
        .ids("conversation")
        .into_iter()
        .filter(|id| {
            intercom.get("conversation", id).unwrap()["updated_at"]
                .as_i64()
                .unwrap()
                >= since
        })
        .collect();
    assert_eq!(ids(&found), want);
}

#[tokio::test]
async fn bad_searches_are_refused() {
    let (_intercom, client) = dated().await;
    let list_cursor =
        client.ok("/contacts?per_page=1").await["pages"]["next"]["starting_after"].clone();
    let deep = json!({"operator": "AND", "value": [{"operator": "OR", "value": [
        {"operator": "AND", "value": [filter("updated_at", "=", D)]}]}]});
    let sixteen: Vec<Value> = (0..16).map(|_| filter("updated_at", "=", D)).collect();
    let bodies = [
        json!({}),
        json!({"query": {"field": "email", "operator": "=", "value": "x@example.com"}}),
        json!({"query": {"field": "updated_at", "operator": "~", "value": 1}}),
        json!({"query": {"field": "updated_at", "operator": "=", "value": "yesterday"}}),
        json!({"query": {"operator": "AND", "value": []}}),
        json!({"query": {"operator": "AND", "value": sixteen}}),
        json!({"query": deep}),
        json!({"query": filter("updated_at", "=", D), "pagination": {"per_page": 151}}),
        json!({"query": filter("updated_at", "=", D), "pagination": {"starting_after": list_cursor}}),
        json!({"query": filter("updated_at", "=", D), "sort": {"field": "name"}}),
    ];
    for body in bodies {
        let reply = client.post("/contacts/search", &body).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(
            reply.json()["errors"][0]["code"],
            "parameter_invalid",
            "{body}"
        );
    }
    let reply = support::send(
        &client.base_url,
        "POST",
        "/contacts/search",
        &[("Authorization", &format!("Bearer {}", client.token))],
        Some(b"{not json"),
    )
    .await;
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn search_trails_writes_when_told_to() {
    let (intercom, client) = dated().await;
    intercom.set_clock(Some(D + DAY + 12 * HOUR + 30));
    intercom.set_search_lag(60);
    // "e" was updated 30 s ago: not indexed yet; lists and retrieves see it at once.
    let query = filter("updated_at", ">", D - 1);
    assert_eq!(
        names(&client, "conversations", query.clone()).await,
        ["a", "b", "c", "d"]
    );
    assert_eq!(client.ok("/conversations").await["total_count"], 5);
    intercom.advance_clock(31);
    assert_eq!(names(&client, "conversations", query).await.len(), 5);
}
