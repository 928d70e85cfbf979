//! Full walks of every resource and single fetches.

use serde_json::{json, Value};
use supasaasy_connector::{Connector, ConnectorError, ListOptions};
use supasaasy_testkit::fake_intercom::{
    FakeIntercom, IntercomCounts, IntercomData, SCROLL_PAGE_SIZE,
};

use crate::support::{connector, connector_with_token, message, sorted, walk, walk_with};

fn counts() -> IntercomCounts {
    IntercomCounts {
        companies: 2 * SCROLL_PAGE_SIZE + 7,
        contacts: 320,
        admins: 5,
        conversations: 30,
        parts_per_conversation: 4,
    }
}

#[tokio::test]
async fn walks_every_resource_in_full() {
    let intercom = FakeIntercom::start(IntercomData::generate(&counts())).await;
    let connector = connector(&intercom);

    let companies = walk(&connector, "company").await;
    assert_eq!(
        companies.sorted_ids("intercom_company"),
        sorted(intercom.ids("company"))
    );
    // Three pages of companies and the empty page that ends the scroll.
    assert_eq!(companies.pages, 4);
    assert_eq!(companies.requests, 4);

    let contacts = walk(&connector, "contact").await;
    assert_eq!(contacts.ids("intercom_contact"), intercom.ids("contact"));
    assert_eq!(contacts.pages, 3, "150 a page");

    let admins = walk(&connector, "admin").await;
    assert_eq!(admins.ids("intercom_admin"), intercom.ids("admin"));
    assert_eq!((admins.pages, admins.requests), (1, 1));

    for (walk, name) in [
        (&companies, "company"),
        (&contacts, "contact"),
        (&admins, "admin"),
    ] {
        for record in &walk.records {
            let served = intercom.get(name, &record.external_id).expect("served");
            assert_eq!(record.payload, served, "{name} payload as received");
            assert_eq!(
                record.created,
                served.get("created_at").and_then(Value::as_i64)
            );
        }
    }

    assert_eq!(
        intercom.requests_with_version("2.14"),
        intercom.requests(),
        "every request pins Intercom-Version"
    );
}

#[tokio::test]
async fn conversations_come_whole_with_their_parts() {
    let intercom = FakeIntercom::start(IntercomData::generate(&counts())).await;
    let long = intercom.ids("conversation")[3].clone();
    let parts: Vec<Value> = (0..520)
        .map(|i| json!({"type": "conversation_part", "id": format!("9{i:05}"), "part_type": "comment", "created_at": 1_700_000_000 + i}))
        .collect();
    intercom.set_parts(&long, parts);
    let connector = connector(&intercom);

    let walk = walk(&connector, "conversation").await;
    assert_eq!(
        walk.ids("intercom_conversation"),
        intercom.ids("conversation")
    );
    assert_eq!(walk.pages, 1);
    assert_eq!(
        walk.requests,
        1 + 30,
        "the list and one fetch per conversation"
    );

    // Each conversation is followed by its parts, each naming it.
    let mut current: Option<String> = None;
    let mut parts_of: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for record in &walk.records {
        match record.collection_key {
            "intercom_conversation" => {
                assert!(record.payload.value().get("conversation_parts").is_some());
                current = Some(record.external_id.clone());
                parts_of.entry(record.external_id.clone()).or_default();
            }
            "intercom_conversation_part" => {
                let owner = current.clone().expect("a part follows its conversation");
                assert_eq!(record.payload.value()["conversation_id"], owner.as_str());
                parts_of
                    .entry(owner)
                    .or_default()
                    .push(record.external_id.clone());
            }
            other => panic!("unexpected collection {other}"),
        }
    }
    for id in intercom.ids("conversation") {
        let all: Vec<String> = intercom
            .parts(&id)
            .expect("parts")
            .iter()
            .map(|p| {
                p["id"]
                    .as_str()
                    .map_or_else(|| p["id"].to_string(), str::to_owned)
            })
            .collect();
        let newest = &all[all.len().saturating_sub(500)..];
        assert_eq!(parts_of[&id], newest, "conversation {id}");
    }
    assert_eq!(parts_of[&long].len(), 500, "Intercom serves the newest 500");
}

#[tokio::test]
async fn sync_from_leaves_out_older_objects() {
    let intercom = FakeIntercom::start(IntercomData::generate(&counts())).await;
    let connector = connector(&intercom);
    let ids = intercom.ids("contact");
    let from = intercom.get("contact", &ids[200]).expect("contact")["created_at"]
        .as_i64()
        .expect("created_at");
    let options = ListOptions {
        created_gte: Some(from),
        ..ListOptions::default()
    };
    let contacts = walk_with(&connector, "contact", &options).await;
    assert_eq!(contacts.ids("intercom_contact"), ids[200..].to_vec());

    let conversations = walk_with(&connector, "conversation", &options).await;
    for record in &conversations.records {
        if record.collection_key == "intercom_conversation" {
            assert!(record.created >= Some(from));
        }
    }
    let kept = conversations.ids("intercom_conversation").len() as u32;
    assert_eq!(
        conversations.requests,
        1 + kept,
        "older conversations are not fetched"
    );
}

#[tokio::test]
async fn fetches_each_kind_and_tombstones_what_is_gone() {
    let intercom = FakeIntercom::start(IntercomData::generate(&counts())).await;
    let connector = connector(&intercom);

    for (resource, collection_key) in [
        ("company", "intercom_company"),
        ("contact", "intercom_contact"),
        ("admin", "intercom_admin"),
    ] {
        let id = intercom.ids(resource)[1].clone();
        let change = connector
            .fetch_object(resource, &id, None)
            .await
            .expect(resource);
        assert_eq!(change.resource, resource);
        assert_eq!(change.record.collection_key, collection_key);
        assert_eq!(change.record.external_id, id);
        assert_eq!(
            Some(change.record.payload.value().into_owned()),
            intercom.get(resource, &id)
        );
        assert!(!change.deleted && change.children.is_none());

        assert!(intercom.delete(resource, &id));
        let gone = connector
            .fetch_object(resource, &id, None)
            .await
            .expect(resource);
        assert!(gone.deleted, "{resource}");
        assert_eq!(gone.record.payload, json!({"id": id, "deleted": true}));
    }

    let id = intercom.ids("conversation")[0].clone();
    let change = connector
        .fetch_object("conversation", &id, None)
        .await
        .expect("conversation");
    let parts = change.children.expect("the complete part set");
    assert_eq!(parts.collection_key, "intercom_conversation_part");
    assert_eq!(parts.parent_field, "conversation_id");
    assert_eq!(parts.records.len(), 4);
    assert!(parts
        .records
        .iter()
        .all(|p| p.payload.value()["conversation_id"] == id.as_str()));

    assert!(intercom.delete("conversation", &id));
    let gone = connector
        .fetch_object("conversation", &id, None)
        .await
        .expect("conversation");
    assert!(gone.deleted);
    assert_eq!(gone.children.map(|c| c.records.len()), Some(0));
}

#[tokio::test]
async fn a_rejected_token_is_fatal_and_never_echoed() {
    let intercom = FakeIntercom::start(IntercomData::generate(&counts())).await;
    let connector = connector_with_token(&intercom, "ic_wrong_token_4242");
    for resource in ["company", "contact", "admin", "conversation"] {
        let err = connector
            .list_page(resource, None, &ListOptions::default())
            .await
            .expect_err("401");
        assert!(matches!(err, ConnectorError::Rejected { .. }), "{err:?}");
        assert!(
            message(&err)
                .starts_with("Intercom rejected the access token for app intercom_fake (401)"),
            "{err}"
        );
        assert!(!message(&err).contains("ic_wrong_token_4242"));
    }
}

#[tokio::test]
async fn server_errors_are_retryable_and_a_page_asks_again_cleanly() {
    let intercom = FakeIntercom::start(IntercomData::generate(&counts())).await;
    let connector = connector(&intercom);
    let first = connector
        .list_page("contact", None, &ListOptions::default())
        .await
        .expect("page");
    let cursor = first.next_cursor.expect("more");
    intercom.fail_next(1, 503);
    let err = connector
        .list_page("contact", Some(&cursor), &ListOptions::default())
        .await
        .expect_err("503");
    assert!(matches!(err, ConnectorError::Retryable { .. }), "{err:?}");
    let again = connector
        .list_page("contact", Some(&cursor), &ListOptions::default())
        .await
        .expect("page");
    assert_eq!(again.records[0].external_id, intercom.ids("contact")[150]);
}
