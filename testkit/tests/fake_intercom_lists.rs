//! The fake Intercom's lists and retrieves over real HTTP: cursor walks, page sizes, cursor
//! encoding, conversation parts, admins, 404s, live edits, and speed with large data.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use supasaasy_testkit::fake_intercom::{
    example, FakeIntercom, IntercomCounts, IntercomData, CONTACTS_PER_PAGE, CONVERSATIONS_PER_PAGE,
    MAX_EMBEDDED_PARTS,
};
use support::encode;
use support::intercom::{ids, Ic};

fn counts() -> IntercomCounts {
    IntercomCounts {
        companies: 10,
        contacts: 333,
        admins: 3,
        conversations: 101,
        parts_per_conversation: 2,
    }
}

async fn start() -> (FakeIntercom, Ic) {
    let intercom = FakeIntercom::start(IntercomData::generate(&counts())).await;
    let client = Ic::of(&intercom);
    (intercom, client)
}

#[tokio::test]
async fn contact_and_conversation_walks_see_every_object_once() {
    let (intercom, client) = start().await;
    let want = intercom.ids("contact");
    assert_eq!(want.len(), 333);
    for per_page in [7, 50, 150] {
        let got = client.walk("/contacts", "data", per_page).await;
        assert_eq!(ids(&got), want, "per_page={per_page}");
    }
    let single = client.ok("/contacts?per_page=1").await;
    assert_eq!(single["data"][0]["id"], want[0].as_str());
    assert_eq!(single["pages"]["total_pages"], 333);
    let page = client.ok("/contacts").await;
    assert_eq!(page["type"], "list");
    assert_eq!(page["pages"]["per_page"], CONTACTS_PER_PAGE);
    assert_eq!(page["total_count"], 333);
    assert_eq!(page["data"][0]["type"], "contact");

    let conversations = client.walk("/conversations", "conversations", 20).await;
    assert_eq!(ids(&conversations), intercom.ids("conversation"));
    assert!(conversations
        .iter()
        .all(|c| c.get("conversation_parts").is_none() && c["type"] == "conversation"));
    let page = client.ok("/conversations").await;
    assert_eq!(page["type"], "conversation.list");
    assert_eq!(page["pages"]["per_page"], CONVERSATIONS_PER_PAGE);
    assert_eq!(page["total_count"], 101);
    let last = client.ok("/conversations?per_page=150").await;
    assert!(
        last["pages"].get("next").is_none(),
        "no next on the last page"
    );
    assert_eq!(last["pages"]["total_pages"], 1);
}

#[tokio::test]
async fn page_sizes_are_bounded() {
    let (_intercom, client) = start().await;
    for bad in ["0", "151", "1000", "ten", "-5"] {
        for path in ["/contacts", "/conversations"] {
            let reply = client.get(&format!("{path}?per_page={bad}")).await;
            assert_eq!(reply.status, 400, "{path} per_page={bad}");
            let body = reply.json();
            assert_eq!(body["type"], "error.list");
            assert_eq!(body["errors"][0]["code"], "parameter_invalid");
        }
    }
    let page = client.ok("/contacts?per_page=150").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 150);
    assert_eq!(page["pages"]["total_pages"], 3);
    // Unknown parameters are ignored.
    assert_eq!(
        client.get("/contacts?per_page=2&order=desc").await.status,
        200
    );
}

#[tokio::test]
async fn cursors_are_opaque_and_must_be_percent_encoded() {
    let (intercom, client) = start().await;
    let first = client.ok("/contacts?per_page=2").await;
    let next = &first["pages"]["next"];
    assert_eq!(next["page"], 2);
    let cursor = next["starting_after"].as_str().unwrap();
    assert!(cursor.contains('+') && cursor.contains('/') && cursor.contains('\n'));
    assert!(
        !cursor.contains(&intercom.ids("contact")[1]),
        "cursors do not show ids"
    );

    // `+` sent as is decodes to a space, as on Intercom: the cursor is damaged.
    let sloppy = encode(cursor).replace("%2B", "+");
    let reply = client
        .get(&format!("/contacts?per_page=2&starting_after={sloppy}"))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["errors"][0]["code"], "parameter_invalid");

    let second = client
        .ok(&format!(
            "/contacts?per_page=2&starting_after={}",
            encode(cursor)
        ))
        .await;
    assert_eq!(second["pages"]["page"], 2);
    assert_eq!(second["data"][0]["id"], intercom.ids("contact")[2].as_str());

    // A contact cursor means nothing to conversations.
    let reply = client
        .get(&format!("/conversations?starting_after={}", encode(cursor)))
        .await;
    assert_eq!(reply.status, 400);

    // A cursor names a position: deleting the object it ended on does not break the walk.
    assert!(intercom.delete("contact", &intercom.ids("contact")[1]));
    let after = client
        .ok(&format!(
            "/contacts?per_page=2&starting_after={}",
            encode(cursor)
        ))
        .await;
    assert_eq!(after["data"][0]["id"], second["data"][0]["id"]);
}

#[tokio::test]
async fn conversation_parts_come_with_a_retrieve_at_most_500() {
    let (intercom, client) = start().await;
    let id = intercom.ids("conversation")[5].clone();
    let full = client.ok(&format!("/conversations/{id}")).await;
    let parts = &full["conversation_parts"];
    assert_eq!(parts["type"], "conversation_part.list");
    assert_eq!(parts["total_count"], 2);
    assert_eq!(parts["conversation_parts"][0]["type"], "conversation_part");
    assert_eq!(full, intercom.get("conversation", &id).unwrap());

    let many: Vec<Value> = (0..MAX_EMBEDDED_PARTS + 7)
        .map(|n| json!({"type": "conversation_part", "id": (9_000 + n).to_string(), "created_at": n}))
        .collect();
    intercom.set_parts(&id, many);
    let full = client.ok(&format!("/conversations/{id}")).await;
    let shown = full["conversation_parts"]["conversation_parts"]
        .as_array()
        .unwrap();
    assert_eq!(shown.len(), MAX_EMBEDDED_PARTS);
    assert_eq!(shown[0]["id"], "9007", "the newest 500 are shown");
    assert_eq!(
        full["conversation_parts"]["total_count"],
        MAX_EMBEDDED_PARTS
    );
    assert_eq!(intercom.parts(&id).unwrap().len(), MAX_EMBEDDED_PARTS + 7);
    assert_eq!(intercom.parts("404"), None);
}

#[tokio::test]
async fn admins_companies_and_missing_objects() {
    let (intercom, client) = start().await;
    let admins = client.ok("/admins").await;
    assert_eq!(admins["type"], "admin.list");
    assert_eq!(
        ids(admins["admins"].as_array().unwrap()),
        intercom.ids("admin")
    );
    assert!(admins.get("pages").is_none());
    let admin = &intercom.ids("admin")[0];
    assert_eq!(
        client.ok(&format!("/admins/{admin}")).await["type"],
        "admin"
    );
    let company = &intercom.ids("company")[0];
    assert_eq!(
        client.ok(&format!("/companies/{company}")).await["id"],
        company.as_str()
    );

    let missing = [
        ("/admins/1", "admin_not_found"),
        ("/companies/000000000000000000000000", "company_not_found"),
        ("/contacts/000000000000000000000000", "not_found"),
        ("/conversations/1", "not_found"),
        ("/tickets", "not_found"),
    ];
    for (path, code) in missing {
        let reply = client.get(path).await;
        assert_eq!(reply.status, 404, "{path}");
        let body = reply.json();
        assert_eq!(body["type"], "error.list");
        assert_eq!(body["errors"][0]["code"], code, "{path}");
        assert!(body["request_id"].is_string());
    }
}

#[tokio::test]
async fn live_edits_show_over_http() {
    let (intercom, client) = start().await;
    intercom.set_clock(Some(1_800_000_000));
    let contacts = intercom.ids("contact");

    assert!(intercom.update("contact", &contacts[0], |c| c["name"] = json!("Renamed")));
    let got = client.ok(&format!("/contacts/{}", contacts[0])).await;
    assert_eq!(
        (got["name"].as_str(), got["updated_at"].as_i64()),
        (Some("Renamed"), Some(1_800_000_000))
    );
    assert!(intercom.update("contact", &contacts[1], |c| c["updated_at"] = json!(5)));
    assert_eq!(
        intercom.get("contact", &contacts[1]).unwrap()["updated_at"],
        5
    );
    assert!(!intercom.update("contact", "nope", |_| {}));

    assert!(intercom.delete("contact", &contacts[2]));
    assert!(!intercom.delete("contact", &contacts[2]));
    let reply = client.get(&format!("/contacts/{}", contacts[2])).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["errors"][0]["code"], "not_found");
    let walked = ids(&client.walk("/contacts", "data", 150).await);
    assert_eq!(walked.len(), 332);
    assert!(!walked.contains(&contacts[2]));

    // A new contact has the newest created_at: it comes last.
    let mut fresh = example("contact");
    fresh["id"] = json!("6b49d4000000000000000001");
    let map = fresh.as_object_mut().unwrap();
    map.remove("created_at");
    map.remove("updated_at");
    intercom.upsert("contact", fresh);
    let walked = ids(&client.walk("/contacts", "data", 150).await);
    assert_eq!(
        walked.last().map(String::as_str),
        Some("6b49d4000000000000000001")
    );
    assert_eq!(
        intercom.get("contact", "6b49d4000000000000000001").unwrap()["created_at"],
        1_800_000_000
    );

    // Conversations: parts with the object, parts kept across updates, gone with a delete.
    let mut conv = example("conversation");
    conv["id"] = json!("777");
    conv["conversation_parts"] = json!({"type": "conversation_part.list", "total_count": 1,
        "conversation_parts": [example("conversation_part")]});
    intercom.upsert("conversation", conv);
    assert_eq!(
        client.ok("/conversations/777").await["conversation_parts"]["total_count"],
        1
    );
    assert!(intercom.update("conversation", "777", |c| c["state"] = json!("open")));
    let got = client.ok("/conversations/777").await;
    assert_eq!(
        (
            got["state"].as_str(),
            got["conversation_parts"]["total_count"].as_u64()
        ),
        (Some("open"), Some(1))
    );
    assert_eq!(got["updated_at"], 1_800_000_000);
    assert!(intercom.delete("conversation", "777"));
    assert_eq!(client.get("/conversations/777").await.status, 404);
    assert_eq!(intercom.parts("777"), None);
    assert_eq!(intercom.count("conversation"), 101);
}

#[tokio::test]
async fn large_data_generates_and_serves_quickly() {
    let counts = IntercomCounts {
        companies: 2_000,
        contacts: 10_000,
        admins: 20,
        conversations: 3_000,
        parts_per_conversation: 10,
    };
    let began = Instant::now();
    let data = IntercomData::generate(&counts);
    let generated = began.elapsed();
    assert_eq!(data.count("contact"), 10_000);
    let intercom = FakeIntercom::start(data).await;
    let client = Ic::of(&intercom);
    let began = Instant::now();
    let contacts = client.walk("/contacts", "data", 150).await;
    let conversations = client.walk("/conversations", "conversations", 150).await;
    let walked = began.elapsed();
    assert_eq!((contacts.len(), conversations.len()), (10_000, 3_000));
    let last = &conversations[2_999]["id"];
    let full = client
        .ok(&format!("/conversations/{}", last.as_str().unwrap()))
        .await;
    assert_eq!(full["conversation_parts"]["total_count"], 10);
    // Generous bounds (debug builds, busy machines); a quadratic slip would blow far past them.
    assert!(
        generated < Duration::from_secs(10),
        "generation took {generated:?}"
    );
    assert!(walked < Duration::from_secs(20), "walking took {walked:?}");
}
