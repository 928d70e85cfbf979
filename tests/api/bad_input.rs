//! Every route against bad input: each answer has its documented status and the database is left
//! exactly as it was.

use reqwest::Method;
use serde_json::json;
use supasaasy_testkit::fake_stripe::{stripe_signature, Counts, StripeData};

use crate::helpers::{spawn_app, webhook_secret, Setup, TestApp, ADMIN_KEY};

/// Everything a bad request could have changed.
async fn snapshot(app: &TestApp) -> Vec<i64> {
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM supasaasy.sync_jobs),
                    (SELECT count(*) FROM supasaasy.sync_tasks),
                    (SELECT count(*) FROM supasaasy.entities),
                    (SELECT count(*) FROM supasaasy.entities WHERE deleted_at IS NOT NULL),
                    (SELECT count(*) FROM supasaasy.provider_events),
                    (SELECT COALESCE(sum(hashtext(raw_payload::text)), 0) FROM supasaasy.entities)",
            &[],
        )
        .await
        .unwrap();
    (0..6).map(|i| row.get(i)).collect()
}

/// One request of the table and the status it must get.
type Case = (Method, String, Auth, Vec<u8>, Option<String>, u16);

enum Auth {
    None,
    Admin,
    Wrong,
    Basic,
}

#[tokio::test]
async fn every_route_refuses_bad_input_and_changes_nothing() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(StripeData::generate(&Counts {
            customers: 20,
            ..Counts::default()
        }))
    })
    .await;
    // Something in the mirror and the queue to stay untouched.
    let id = app.fake().ids("customer")[0].clone();
    app.fake()
        .update("customer", &id, |c| c["name"] = json!("Kept"));
    let event = app.fake().last_event().unwrap();
    let body = serde_json::to_vec(&event).unwrap();
    let now = chrono::Utc::now().timestamp();
    let secret = webhook_secret("stripe_test");
    let signature = stripe_signature(&secret, now, &body);
    let (status, _) = app
        .post_webhook("stripe_test", &body, Some(&signature))
        .await;
    assert_eq!(status, 200);
    let job = app
        .sync(json!({"app_key": "stripe_test", "mode": "full"}), 202)
        .await;
    let job_id = job["job_id"].as_str().unwrap().to_string();
    let before = snapshot(&app).await;

    let unknown_job = "6f1c1f4e-3a59-4d59-9b83-0a4a0c6f0d11";
    let huge = vec![b'x'; (1 << 20) + 1];
    let signed = |b: &[u8]| stripe_signature(&secret, now, b);
    let cases: Vec<Case> = vec![
        // POST /sync
        (
            Method::POST,
            "/sync".into(),
            Auth::None,
            br#"{"app_key":"stripe_test"}"#.to_vec(),
            None,
            401,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Wrong,
            br#"{"app_key":"stripe_test"}"#.to_vec(),
            None,
            401,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Basic,
            br#"{"app_key":"stripe_test"}"#.to_vec(),
            None,
            401,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Admin,
            b"{nope".to_vec(),
            None,
            400,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Admin,
            b"".to_vec(),
            None,
            400,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Admin,
            br#"[1,2]"#.to_vec(),
            None,
            400,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Admin,
            br#"{"app_key":5}"#.to_vec(),
            None,
            400,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Admin,
            br#"{"app_key":"stripe_test","mode":7}"#.to_vec(),
            None,
            400,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Admin,
            br#"{"app_key":"stripe_test","mode":"sometimes"}"#.to_vec(),
            None,
            400,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Admin,
            br#"{"app_key":"stripe_test","resource_types":"customer"}"#.to_vec(),
            None,
            400,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Admin,
            br#"{"app_key":"stripe_test","resource_types":["invoices"]}"#.to_vec(),
            None,
            400,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Admin,
            br#"{"app_key":"stripe_test","immediate":"yes"}"#.to_vec(),
            None,
            400,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Admin,
            br#"{"app_key":"stripe_test","colour":1}"#.to_vec(),
            None,
            400,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Admin,
            br#"{"app_key":"nope"}"#.to_vec(),
            None,
            404,
        ),
        (
            Method::POST,
            "/sync".into(),
            Auth::Admin,
            huge.clone(),
            None,
            413,
        ),
        (Method::PUT, "/sync".into(), Auth::Admin, vec![], None, 405),
        // Jobs
        (Method::GET, "/jobs".into(), Auth::None, vec![], None, 401),
        (
            Method::GET,
            "/jobs?limit=abc".into(),
            Auth::Admin,
            vec![],
            None,
            400,
        ),
        (
            Method::GET,
            "/jobs?limit=0".into(),
            Auth::Admin,
            vec![],
            None,
            400,
        ),
        (
            Method::GET,
            "/jobs?limit=5000".into(),
            Auth::Admin,
            vec![],
            None,
            400,
        ),
        (
            Method::GET,
            "/jobs?status=asleep".into(),
            Auth::Admin,
            vec![],
            None,
            400,
        ),
        (
            Method::GET,
            "/jobs?colour=red".into(),
            Auth::Admin,
            vec![],
            None,
            400,
        ),
        (
            Method::DELETE,
            "/jobs".into(),
            Auth::Admin,
            vec![],
            None,
            405,
        ),
        (
            Method::GET,
            "/jobs/123".into(),
            Auth::Admin,
            vec![],
            None,
            400,
        ),
        (
            Method::GET,
            "/jobs/%00".into(),
            Auth::Admin,
            vec![],
            None,
            400,
        ),
        // A NUL in a filter is refused, not handed to Postgres (which answers an error).
        (
            Method::GET,
            "/jobs?app_key=stripe%00test".into(),
            Auth::Admin,
            vec![],
            None,
            400,
        ),
        (
            Method::GET,
            "/events?app_key=%00".into(),
            Auth::Admin,
            vec![],
            None,
            400,
        ),
        (
            Method::GET,
            format!("/jobs/{unknown_job}"),
            Auth::Admin,
            vec![],
            None,
            404,
        ),
        (
            Method::GET,
            format!("/jobs/{job_id}"),
            Auth::Wrong,
            vec![],
            None,
            401,
        ),
        (
            Method::GET,
            format!("/jobs/{job_id}?include_tasks=maybe"),
            Auth::Admin,
            vec![],
            None,
            400,
        ),
        (
            Method::GET,
            "/job-status/not-a-uuid".into(),
            Auth::Admin,
            vec![],
            None,
            400,
        ),
        (
            Method::DELETE,
            format!("/jobs/{job_id}"),
            Auth::Admin,
            vec![],
            None,
            405,
        ),
        (
            Method::POST,
            format!("/jobs/{job_id}/cancel"),
            Auth::None,
            vec![],
            None,
            401,
        ),
        (
            Method::POST,
            "/jobs/zzz/cancel".into(),
            Auth::Admin,
            vec![],
            None,
            400,
        ),
        (
            Method::POST,
            format!("/jobs/{unknown_job}/cancel"),
            Auth::Admin,
            vec![],
            None,
            404,
        ),
        (
            Method::GET,
            format!("/jobs/{job_id}/cancel"),
            Auth::Admin,
            vec![],
            None,
            405,
        ),
        // Health and unknown routes
        (
            Method::POST,
            "/health".into(),
            Auth::None,
            vec![],
            None,
            405,
        ),
        (
            Method::GET,
            "/nowhere".into(),
            Auth::Admin,
            vec![],
            None,
            404,
        ),
        // Webhooks
        (
            Method::POST,
            "/webhook/nope".into(),
            Auth::None,
            body.clone(),
            Some(signature.clone()),
            404,
        ),
        (
            Method::POST,
            "/webhook/stripe_test".into(),
            Auth::None,
            body.clone(),
            None,
            401,
        ),
        (
            Method::POST,
            "/webhook/stripe_test".into(),
            Auth::Admin,
            body.clone(),
            None,
            401,
        ),
        (
            Method::POST,
            "/webhook/stripe_test".into(),
            Auth::None,
            body.clone(),
            Some("v1=abc".into()),
            401,
        ),
        (
            Method::POST,
            "/webhook/stripe_test".into(),
            Auth::None,
            body.clone(),
            Some(stripe_signature(&secret, now - 400, &body)),
            401,
        ),
        (
            Method::POST,
            "/webhook/stripe_test".into(),
            Auth::None,
            b"{}".to_vec(),
            Some(signed(b"{}")),
            400,
        ),
        (
            Method::POST,
            "/webhook/stripe_test".into(),
            Auth::None,
            b"[]".to_vec(),
            Some(signed(b"[]")),
            400,
        ),
        (
            Method::POST,
            "/webhook/stripe_test".into(),
            Auth::None,
            br#"{"id":7,"type":"customer.updated","created":1,"data":{"object":{}}}"#.to_vec(),
            Some(signed(
                br#"{"id":7,"type":"customer.updated","created":1,"data":{"object":{}}}"#,
            )),
            400,
        ),
        (
            Method::POST,
            "/webhook/stripe_test".into(),
            Auth::None,
            huge.clone(),
            Some(signed(&huge)),
            413,
        ),
        (
            Method::GET,
            "/webhook/stripe_test".into(),
            Auth::None,
            vec![],
            None,
            405,
        ),
        // A replay of the delivery already applied: acknowledged, changes nothing.
        (
            Method::POST,
            "/webhook/stripe_test".into(),
            Auth::None,
            body.clone(),
            Some(signature.clone()),
            200,
        ),
    ];
    for (method, path, auth, body, sig, want) in cases {
        let mut req = app
            .http
            .request(method.clone(), format!("{}{path}", app.base))
            .body(body);
        req = match auth {
            Auth::None => req,
            Auth::Admin => req.bearer_auth(ADMIN_KEY),
            Auth::Wrong => req.bearer_auth("wrong"),
            Auth::Basic => req.basic_auth(ADMIN_KEY, Some("x")),
        };
        if let Some(sig) = sig {
            req = req.header("Stripe-Signature", sig);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let answer: serde_json::Value = resp.json().await.unwrap_or_default();
        assert_eq!(status, want, "{method} {path}: {answer}");
        if want != 200 {
            assert!(answer["error"].is_string(), "{method} {path}: {answer}");
        } else {
            assert_eq!(answer["action"], "duplicate");
        }
        assert_eq!(
            snapshot(&app).await,
            before,
            "{method} {path} changed the database"
        );
    }
    app.stop().await;
}
