//! The job API's answers and error codes.

use reqwest::Method;
use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::StripeData;

use crate::helpers::{spawn_app, Setup};

#[tokio::test]
async fn admin_routes_need_the_bearer_key() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    let job = "00000000-0000-0000-0000-000000000000";
    let routes = [
        (Method::POST, "/sync".to_string()),
        (Method::GET, "/jobs".to_string()),
        (Method::GET, format!("/jobs/{job}")),
        (Method::GET, format!("/job-status/{job}")),
        (Method::POST, format!("/jobs/{job}/cancel")),
    ];
    for (method, path) in routes {
        let url = format!("{}{path}", app.base);
        let none = app.http.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(none.status(), 401, "{method} {path} without a key");
        let body: Value = none.json().await.unwrap();
        assert!(body["error"].is_string());
        let wrong = app
            .http
            .request(method.clone(), &url)
            .bearer_auth("nope")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{method} {path} with a wrong key");
    }
    let jobs = app.count("sync_jobs").await;
    assert_eq!(jobs, 0, "a refused request creates nothing");
    app.stop().await;
}

#[tokio::test]
async fn sync_requests_are_checked() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::classic(StripeData::empty())
    })
    .await;
    let cases = [
        (
            json!({"app_key": "stripe_test", "mode": "sideways"}),
            400,
            "sideways",
        ),
        (json!({"app_key": "nope"}), 404, "nope"),
        (
            json!({"app_key": "stripe_test", "resource_types": ["invoices"]}),
            400,
            "invoices",
        ),
        (
            json!({"app_key": "stripe_test", "resource_types": []}),
            400,
            "empty",
        ),
        (json!({"mode": "full"}), 400, "app_key"),
        (json!({"app_key": 7}), 400, "invalid"),
    ];
    for (body, status, needle) in cases {
        let answer = app.sync(body.clone(), status).await;
        let msg = answer["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let resp = app
        .admin(Method::POST, "/sync")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let jobs = app.count("sync_jobs").await;
    assert_eq!(jobs, 0, "a refused request creates nothing");

    // A good one: 202, one task per resource, subscription items ride with subscriptions.
    let answer = app
        .sync(json!({"app_key": "stripe_test", "mode": "full"}), 202)
        .await;
    assert_eq!(answer["status"], "pending");
    assert_eq!(answer["mode"], "full");
    assert_eq!(answer["total_tasks"], 5);
    assert_eq!(
        answer["resource_types"],
        json!(["customer", "product", "price", "plan", "subscription"])
    );
    let default_mode = app
        .sync(
            json!({"app_key": "stripe_test", "resource_types": ["price"]}),
            202,
        )
        .await;
    assert_eq!(default_mode["mode"], "incremental");
    assert_eq!(default_mode["total_tasks"], 1);
    app.stop().await;
}

#[tokio::test]
async fn an_immediate_sync_answers_202_when_its_wait_ends_with_no_worker_running() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::classic(StripeData::empty())
    })
    .await;
    for (body, needle) in [
        (
            json!({"wait_seconds": -1}),
            "wait_seconds must be between 0 and 3600",
        ),
        (
            json!({"wait_seconds": 3601}),
            "wait_seconds must be between 0 and 3600",
        ),
        (json!({"wait_seconds": 1.5}), "wait_seconds"),
        (json!({"wait_seconds": "soon"}), "wait_seconds"),
    ] {
        let mut body = body;
        body["app_key"] = json!("stripe_test");
        body["immediate"] = json!(true);
        let answer = app.sync(body.clone(), 400).await;
        let msg = answer["error"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    assert_eq!(app.count("sync_jobs").await, 0, "nothing enqueued");

    // No worker runs, so the job never ends: the answer comes when the wait does. The bound
    // only detects a request that hangs.
    let bound = std::time::Duration::from_secs(60);
    for wait in [0, 1] {
        let body = json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"],
                          "immediate": true, "wait_seconds": wait});
        let answer = tokio::time::timeout(bound, app.sync(body, 202))
            .await
            .expect("the answer comes when the wait ends");
        assert_eq!(answer["status"], "pending", "{answer}");
        assert_eq!(answer["total_tasks"], 1);
        assert_eq!(answer["resource_types"], json!(["customer"]));
        let job = answer["job_id"].as_str().unwrap();
        let doc = app
            .admin(Method::GET, &format!("/jobs/{job}"))
            .send()
            .await
            .unwrap();
        assert_eq!(doc.status(), 200, "the job exists, to be polled");
    }
    app.stop().await;
}

#[tokio::test]
async fn jobs_are_found_listed_and_cancelled() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::classic(StripeData::empty())
    })
    .await;
    let bad = app
        .admin(Method::GET, "/jobs/not-a-uuid")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let unknown = app
        .admin(Method::GET, "/jobs/6f1c1f4e-3a59-4d59-9b83-0a4a0c6f0d11")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let unknown_cancel = app
        .admin(
            Method::POST,
            "/jobs/6f1c1f4e-3a59-4d59-9b83-0a4a0c6f0d11/cancel",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_cancel.status(), 404);

    let created = app
        .sync(json!({"app_key": "stripe_test", "mode": "full"}), 202)
        .await;
    let id = created["job_id"].as_str().unwrap();
    for path in [format!("/jobs/{id}"), format!("/job-status/{id}")] {
        let doc: Value = app
            .admin(Method::GET, &path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for key in [
            "job_id",
            "app_key",
            "mode",
            "status",
            "progress_percentage",
            "total_tasks",
            "completed_tasks",
            "failed_tasks",
            "processed_entities",
            "created_at",
            "started_at",
            "completed_at",
            "error_message",
        ] {
            assert!(doc.get(key).is_some(), "{path} lacks {key}: {doc}");
        }
        assert_eq!(doc["status"], "pending");
        assert!(doc.get("tasks").is_none());
    }
    let with_tasks: Value = app
        .admin(Method::GET, &format!("/jobs/{id}?include_tasks=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(with_tasks["tasks"].as_array().unwrap().len(), 5);
    assert_eq!(with_tasks["tasks"][0]["resource_type"], "customer");
    assert_eq!(with_tasks["tasks"][0]["status"], "pending");

    let list: Value = app
        .admin(Method::GET, "/jobs?app_key=stripe_test&limit=5")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["jobs"][0]["job_id"], id);
    let bad_status = app
        .admin(Method::GET, "/jobs?status=sleeping")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_status.status(), 400);

    let cancelled = app
        .admin(Method::POST, &format!("/jobs/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    let doc: Value = cancelled.json().await.unwrap();
    assert_eq!(doc["status"], "cancelled");
    let again = app
        .admin(Method::POST, &format!("/jobs/{id}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let pending: i64 = app
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM supasaasy.sync_tasks WHERE status <> 'cancelled'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0, "cancelling a job cancels its tasks");
    app.stop().await;
}

#[tokio::test]
async fn wrong_methods_and_unknown_routes() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    let cases = [
        (Method::GET, "/sync", 405),
        (Method::DELETE, "/jobs", 405),
        (Method::POST, "/health", 405),
        (
            Method::GET,
            "/jobs/6f1c1f4e-3a59-4d59-9b83-0a4a0c6f0d11/cancel",
            405,
        ),
        (Method::GET, "/nowhere", 404),
    ];
    for (method, path, status) in cases {
        let resp = app.admin(method.clone(), path).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_string());
    }
    let health = app
        .http
        .get(format!("{}/health", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = spawn_app(Setup {
        workers: false,
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    let big = format!(
        "{{\"app_key\": \"stripe_test\", \"pad\": \"{}\"}}",
        "x".repeat(2 << 20)
    );
    let resp = app
        .admin(Method::POST, "/sync")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    app.stop().await;
}

#[tokio::test]
async fn several_admin_keys_are_accepted_at_once_for_rotation() {
    let app = spawn_app(Setup {
        workers: false,
        server_toml: "admin_api_key_env = [\"ADMIN_API_KEY\", \"ADMIN_API_KEY_NEXT\"]\n".into(),
        env: vec![("ADMIN_API_KEY_NEXT".into(), "the-next-admin-key-42".into())],
        ..Setup::stripe(StripeData::empty())
    })
    .await;
    for (key, status) in [
        (crate::helpers::ADMIN_KEY, 200),
        ("the-next-admin-key-42", 200),
        ("the-next-admin-key-4", 401),
        ("", 401),
    ] {
        let resp = app
            .http
            .get(format!("{}/jobs", app.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{key:?}");
    }
    app.stop().await;
}
