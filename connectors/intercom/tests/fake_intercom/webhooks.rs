//! Webhook deliveries built and signed by the fake, verified and read by the connector.

use supasaasy_connector::{Connector, Secret, WebhookError};
use supasaasy_testkit::fake_intercom::{FakeIntercom, IntercomCounts, IntercomData};

use crate::support::connector;

#[tokio::test]
async fn deliveries_verify_and_become_changes() {
    let intercom = FakeIntercom::start(IntercomData::generate(&IntercomCounts::default())).await;
    let connector = connector(&intercom);
    let secret = Secret::new(intercom.client_secret());

    let contact_id = intercom.ids("contact")[0].clone();
    let contact = intercom.get("contact", &contact_id).expect("contact");
    let conversation_id = intercom.ids("conversation")[0].clone();
    let conversation = intercom
        .get("conversation", &conversation_id)
        .expect("conversation");
    let company_id = intercom.ids("company")[0].clone();
    let company = intercom.get("company", &company_id).expect("company");

    for (topic, item, resource, id) in [
        (
            "contact.user.updated",
            contact.clone(),
            "contact",
            &contact_id,
        ),
        (
            "conversation.admin.replied",
            conversation,
            "conversation",
            &conversation_id,
        ),
        ("company.updated", company, "company", &company_id),
    ] {
        let body = intercom
            .notification(topic, item.clone())
            .to_string()
            .into_bytes();
        let header = intercom.sign(&body);
        connector
            .verify_webhook(&secret, Some(&header), &body, 0)
            .expect("the fake's signature verifies");
        let event = connector.parse_webhook(&body).expect("event");
        assert!(event.id.starts_with("notif_"));
        assert_eq!(event.event_type, topic);
        assert!(!event.ignored);
        let [change] = event.changes.as_slice() else {
            panic!("{topic}: one change")
        };
        assert_eq!(change.resource, resource);
        assert_eq!(&change.record.external_id, id);
        assert_eq!(change.record.payload, item);
        assert_eq!(change.children, None);
        assert_eq!(Some(event.created), item["updated_at"].as_i64());

        let mut tampered = body.clone();
        tampered.push(b' ');
        assert!(matches!(
            connector.verify_webhook(&secret, Some(&header), &tampered, 0),
            Err(WebhookError::BadSignature(_))
        ));
    }

    let ping = intercom
        .notification("ping", serde_json::json!({"type": "ping", "message": "hi"}))
        .to_string()
        .into_bytes();
    let header = intercom.sign(&ping);
    connector
        .verify_webhook(&secret, Some(&header), &ping, 0)
        .expect("verifies");
    assert!(connector.parse_webhook(&ping).expect("ping").ignored);
}
