//! `GET /openapi.json` keeps step with the daemon. A walk calls every route of a running daemon
//! until each has answered every status the description documents for it (the database broken
//! and then gone for the 500s and 503s), and checks each answer against the description: the
//! status is documented for the operation, required headers are there, the content type is
//! documented and the body conforms to its schema. The routes the router serves (listed here) and
//! the description's operations must be the same, and the walk must have called them all.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::Method;
use serde_json::{json, Value};
use supasaasy::worker::Worker;
use supasaasy_testkit::fake_alerts::FakeAlerts;
use supasaasy_testkit::fake_intercom::IntercomData;
use supasaasy_testkit::fake_stripe::{stripe_signature, Counts, StripeData};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    connect_secret, spawn_app, webhook_secret, with_dbname, Setup, TestApp, ADMIN_KEY,
};
use crate::openapi_check::{dangling_refs, deref, validate};

/// Every route the router (`src/http/routes.rs`) serves: method, path template, admin.
const ROUTES: [(&str, &str, bool); 14] = [
    ("POST", "/webhook/{app_key}", false),
    ("POST", "/webhook/{app_key}/connect", false),
    ("POST", "/sync", true),
    ("GET", "/jobs", true),
    ("GET", "/jobs/{job_id}", true),
    ("GET", "/job-status/{job_id}", true),
    ("POST", "/jobs/{job_id}/cancel", true),
    ("GET", "/health", false),
    ("GET", "/livez", false),
    ("GET", "/readyz", false),
    ("GET", "/events", true),
    ("POST", "/alerts", true),
    ("GET", "/metrics", false),
    ("GET", "/openapi.json", false),
];

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A job id no job has.
const NIL: &str = "00000000-0000-0000-0000-000000000000";

fn description() -> Value {
    serde_json::from_str(supasaasy::http::openapi::description()).expect("openapi.json is JSON")
}

/// The operations of a path item: lower-case method and operation.
fn operations_of(item: &Value) -> Vec<(&String, &Value)> {
    let item = item.as_object().expect("a path item is an object");
    item.iter()
        .filter(|(k, _)| HTTP_METHODS.contains(&k.as_str()))
        .collect()
}

/// Every (METHOD, path template) of the description.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            operations_of(item)
                .into_iter()
                .map(move |(m, _)| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

/// Every (METHOD, path template, status) the description documents.
fn documented(doc: &Value) -> BTreeSet<(String, String, u16)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in operations_of(item) {
            for status in op["responses"].as_object().expect("responses").keys() {
                let status = status.parse().expect("numeric statuses only");
                out.insert((method.to_uppercase(), path.clone(), status));
            }
        }
    }
    out
}

/// The path template of the description that `path` matches, if any.
fn template_of(doc: &Value, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    let found: Vec<&String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .filter(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(t, s)| {
                    t == s || (t.starts_with('{') && t.ends_with('}') && !s.is_empty())
                })
        })
        .collect();
    assert!(found.len() <= 1, "{path} matches {found:?}");
    found.first().map(|t| t.to_string())
}

/// One request and its answer, as the checks need them.
struct Exchange {
    method: String,
    path: String,
    /// Names of the query parameters sent.
    query: Vec<String>,
    /// The JSON body sent, if any.
    body: Option<Value>,
    status: u16,
    headers: HeaderMap,
    answer: Bytes,
}

/// A daemon under the walk, and what it has answered so far.
struct Walk {
    doc: Value,
    base: String,
    /// A client that opens a connection per request (the daemon's read timeout is short here).
    http: reqwest::Client,
    /// (METHOD, template) called with the operation's own method.
    called: BTreeSet<(String, String)>,
    /// (METHOD, template, status) answered and found as described.
    seen: BTreeSet<(String, String, u16)>,
}

impl Walk {
    fn new(app: &TestApp) -> Walk {
        Walk {
            doc: description(),
            base: app.base.clone(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            called: BTreeSet::new(),
            seen: BTreeSet::new(),
        }
    }

    fn anon(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    fn admin(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.anon(method, path).bearer_auth(ADMIN_KEY)
    }

    /// Sends `req`, checks the answer against the description and expects `status`; the body
    /// (JSON, or the text as a string).
    async fn expect(&mut self, status: u16, req: reqwest::RequestBuilder) -> Value {
        let req = req.build().unwrap();
        let method = req.method().to_string();
        let path = req.url().path().to_string();
        let query = req
            .url()
            .query_pairs()
            .map(|(k, _)| k.into_owned())
            .collect();
        let body = req
            .body()
            .and_then(|b| b.as_bytes())
            .and_then(|b| serde_json::from_slice(b).ok());
        let resp = self.http.execute(req).await.unwrap();
        let exchange = Exchange {
            method,
            path,
            query,
            body,
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            answer: resp.bytes().await.unwrap(),
        };
        self.expect_exchange(&[status], exchange)
    }

    /// Checks an exchange against the description and expects one of `statuses`.
    fn expect_exchange(&mut self, statuses: &[u16], x: Exchange) -> Value {
        let what = format!("{} {} -> {}", x.method, x.path, x.status);
        let body = self.check(&x, &what);
        assert!(
            statuses.contains(&x.status),
            "{what}, not {statuses:?}: {body}"
        );
        body
    }

    fn check(&mut self, x: &Exchange, what: &str) -> Value {
        let doc = &self.doc;
        let template = template_of(doc, &x.path)
            .unwrap_or_else(|| panic!("{what}: no path of the description matches"));
        let item = &doc["paths"][&template];
        let own = x.method.to_lowercase();
        let operations = match item.get(&own) {
            Some(op) => {
                self.called.insert((x.method.clone(), template.clone()));
                vec![(&own, op)]
            }
            None => {
                assert_eq!(
                    x.status, 405,
                    "{what}: the description has no such operation"
                );
                let ops = operations_of(item);
                let allow: Vec<String> = ops.iter().map(|(m, _)| m.to_uppercase()).collect();
                let allowed = x.headers.get(ALLOW).and_then(|v| v.to_str().ok());
                assert_eq!(allowed, Some(allow.join(", ").as_str()), "{what}: Allow");
                ops
            }
        };
        let media = x
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let body = if media == "application/json" {
            serde_json::from_slice(&x.answer)
                .unwrap_or_else(|e| panic!("{what}: the answer is not JSON: {e}"))
        } else {
            Value::String(String::from_utf8_lossy(&x.answer).into_owned())
        };
        for (method, op) in operations {
            let response = op["responses"]
                .get(x.status.to_string())
                .map(|r| deref(doc, r))
                .unwrap_or_else(|| panic!("{what}: status not documented: {body}"));
            let headers = response.get("headers").and_then(Value::as_object);
            for (name, header) in headers.into_iter().flatten() {
                if deref(doc, header)["required"] == true {
                    assert!(x.headers.contains_key(name.as_str()), "{what}: no {name}");
                }
            }
            if x.headers.contains_key(WWW_AUTHENTICATE) {
                assert!(op.get("security").is_some(), "{what}: a bearer challenge");
            }
            let content = response["content"]
                .get(&media)
                .unwrap_or_else(|| panic!("{what}: content type {media:?} not documented"));
            let errors = validate(doc, &content["schema"], &body);
            assert!(
                errors.is_empty(),
                "{what}: the answer breaks the description:\n{}\n{body:#}",
                errors.join("\n")
            );
            if (200..300).contains(&x.status) {
                let params: Vec<&Value> = op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|p| deref(doc, p))
                    .collect();
                for name in &x.query {
                    let known = params
                        .iter()
                        .any(|p| p["in"] == "query" && p["name"] == *name);
                    assert!(known, "{what}: query parameter {name:?} not documented");
                }
                if let Some(sent) = &x.body {
                    let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                    let errors = validate(doc, schema, sent);
                    assert!(
                        errors.is_empty(),
                        "{what}: the accepted body {sent} breaks the description: {errors:?}"
                    );
                }
            }
            self.seen
                .insert((method.to_uppercase(), template.clone(), x.status));
        }
        body
    }
}

/// Sends `POST path` with `headers` and a body that never finishes arriving.
async fn slow_body(base: &str, path: &str, headers: &str) -> Exchange {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 100\r\n{headers}\r\n{{\"app"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let parsed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            raw.extend_from_slice(&chunk[..n]);
            if let Some(parsed) = parse_answer(&raw) {
                return parsed;
            }
            assert!(n > 0, "the connection closed mid-answer");
        }
    })
    .await
    .expect("an answer within the read timeout");
    let (status, headers, answer) = parsed;
    Exchange {
        method: "POST".into(),
        path: path.into(),
        query: Vec::new(),
        body: None,
        status,
        headers,
        answer,
    }
}

/// A whole HTTP/1.1 answer with a `Content-Length`, once `raw` holds it.
fn parse_answer(raw: &[u8]) -> Option<(u16, HeaderMap, Bytes)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let length: usize = headers.get("content-length")?.to_str().ok()?.parse().ok()?;
    let body = &raw[end + 4..];
    (body.len() >= length).then(|| (status, headers, Bytes::copy_from_slice(&body[..length])))
}

#[test]
fn the_router_and_the_description_list_the_same_routes() {
    let doc = description();
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, t, _)| (m.to_string(), t.to_string()))
        .collect();
    assert_eq!(operations(&doc), routes);
    assert_eq!(dangling_refs(&doc), Vec::<String>::new());
    for (method, template, admin) in ROUTES {
        let op = &doc["paths"][template][method.to_lowercase()];
        let secured = op["security"] == json!([{"bearerAuth": []}]);
        assert_eq!(secured, admin, "{method} {template}: bearer security");
        let unauthorized = op["responses"]["401"]["$ref"] == "#/components/responses/Unauthorized";
        assert_eq!(
            unauthorized, admin,
            "{method} {template}: 401 with WWW-Authenticate"
        );
        let params: Vec<&Value> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| deref(&doc, p))
            .collect();
        for name in template.split('/').filter_map(|s| s.strip_prefix('{')) {
            let name = name.trim_end_matches('}');
            let declared = params
                .iter()
                .any(|p| p["in"] == "path" && p["name"] == name && p["required"] == true);
            assert!(declared, "{method} {template}: path parameter {name}");
        }
    }
}

#[tokio::test]
async fn every_route_answers_as_described() {
    let receiver = FakeAlerts::start().await;
    let mut setup = Setup {
        workers: false,
        extra_toml: "[alerts]\nslack_webhook_url_env = \"SLACK_WEBHOOK_URL\"\n".into(),
        env: vec![(
            "SLACK_WEBHOOK_URL".into(),
            receiver.url("/services/T0/B0/walk"),
        )],
        server_toml: "max_body_bytes = 16384\nread_timeout_seconds = 1\n".into(),
        intercom: vec![("intercom_test".into(), IntercomData::empty())],
        ..Setup::stripe(StripeData::generate(&Counts {
            customers: 3,
            products: 2,
            prices_per_product: 1,
            subscriptions: 0,
            items_per_subscription: 0,
            canceled_every: 0,
            ..Counts::default()
        }))
    };
    // A platform with Stripe Connect, for its Connect route.
    setup
        .apps
        .push(("stripe_connect".into(), StripeData::empty()));
    setup.connect_apps = vec!["stripe_connect".into()];
    let app = spawn_app(setup).await;
    let mut walk = Walk::new(&app);

    let served = walk
        .expect(200, walk.anon(Method::GET, "/openapi.json"))
        .await;
    assert_eq!(served, walk.doc, "served as written");
    walk.expect(405, walk.anon(Method::POST, "/openapi.json"))
        .await;
    refuses_without_the_key(&mut walk).await;
    webhooks(&mut walk, &app).await;
    let job = jobs(&mut walk, &app).await;
    operating(&mut walk, &app).await;
    slow_bodies(&mut walk).await;
    broken_tables(&mut walk, &app, &job).await;
    database_gone(&mut walk, &app, &job).await;

    // Paths the description does not have are not served.
    for path in ["/nope", "/webhook", "/jobs/x/y", "/sync/now", "/metrics/x"] {
        let resp = walk.anon(Method::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        let body: Value = resp.json().await.unwrap();
        let error = json!({"$ref": "#/components/schemas/Error"});
        assert_eq!(validate(&walk.doc, &error, &body), Vec::<String>::new());
        assert!(template_of(&walk.doc, path).is_none());
    }
    let uncalled: Vec<_> = operations(&walk.doc)
        .difference(&walk.called)
        .cloned()
        .collect();
    assert!(uncalled.is_empty(), "never called: {uncalled:?}");
    let unseen: Vec<_> = documented(&walk.doc)
        .difference(&walk.seen)
        .cloned()
        .collect();
    assert!(
        unseen.is_empty(),
        "documented but never answered: {unseen:?}"
    );
    app.stop().await;
}

/// Every operation with bearer security answers 401 without the key or with a wrong one.
async fn refuses_without_the_key(walk: &mut Walk) {
    let secured: Vec<(String, String)> = operations(&walk.doc)
        .into_iter()
        .filter(|(m, t)| {
            walk.doc["paths"][t][m.to_lowercase()]
                .get("security")
                .is_some()
        })
        .collect();
    assert!(!secured.is_empty());
    for (method, template) in secured {
        let path = template.replace("{job_id}", NIL);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        walk.expect(401, walk.anon(method.clone(), &path)).await;
        let wrong = walk.anon(method, &path).bearer_auth("not-the-key");
        walk.expect(401, wrong).await;
    }
}

async fn webhooks(walk: &mut Walk, app: &TestApp) {
    let fake = app.fake();
    let id = fake.ids("customer")[0].clone();
    fake.update("customer", &id, |c| c["name"] = json!("Described"));
    let event = fake.last_event().unwrap();
    let body = serde_json::to_vec(&event).unwrap();
    let secret = webhook_secret("stripe_test");
    let now = chrono::Utc::now().timestamp();
    let signed = |body: &[u8]| stripe_signature(&secret, now, body);
    let post = |walk: &Walk, app_key: &str, body: &[u8]| {
        walk.anon(Method::POST, &format!("/webhook/{app_key}"))
            .header("content-type", "application/json")
            .body(body.to_vec())
    };
    let ack = walk
        .expect(
            200,
            post(walk, "stripe_test", &body).header("Stripe-Signature", signed(&body)),
        )
        .await;
    assert_eq!(ack["action"], "applied");
    let again = walk
        .expect(
            200,
            post(walk, "stripe_test", &body).header("Stripe-Signature", signed(&body)),
        )
        .await;
    assert_eq!(again["action"], "duplicate");

    let intercom = &app.intercoms[0].fake;
    let ping = intercom.notification("ping", json!({"type": "ping", "message": "hello"}));
    let ping = serde_json::to_vec(&ping).unwrap();
    let ack = walk
        .expect(
            200,
            post(walk, "intercom_test", &ping).header("X-Hub-Signature", intercom.sign(&ping)),
        )
        .await;
    assert_eq!(ack["action"], "ignored");

    walk.expect(401, post(walk, "stripe_test", &body)).await;
    walk.expect(
        401,
        post(walk, "intercom_test", &ping).header("X-Hub-Signature", "sha1=00"),
    )
    .await;
    walk.expect(
        404,
        post(walk, "nope", &body).header("Stripe-Signature", signed(&body)),
    )
    .await;
    let malformed = br#"{"id":"evt_1","object":"event","type":"customer.updated"}"#;
    walk.expect(
        400,
        post(walk, "stripe_test", malformed).header("Stripe-Signature", signed(malformed)),
    )
    .await;
    let big = vec![b' '; 32 * 1024];
    walk.expect(
        413,
        post(walk, "stripe_test", &big).header("Stripe-Signature", signed(&big)),
    )
    .await;
    walk.expect(405, walk.anon(Method::GET, "/webhook/stripe_test"))
        .await;
    // The Connect route, with the Connect endpoint's secret (tests/api/connect.rs covers what
    // it does).
    let connect = connect_secret("stripe_connect");
    let post_connect = |walk: &Walk, body: &[u8]| {
        walk.anon(Method::POST, "/webhook/stripe_connect/connect")
            .header("content-type", "application/json")
            .body(body.to_vec())
    };
    let ack = walk
        .expect(
            200,
            post_connect(walk, &body)
                .header("Stripe-Signature", stripe_signature(&connect, now, &body)),
        )
        .await;
    assert_eq!(ack["action"], "applied");
    walk.expect(401, post_connect(walk, &body)).await;
    walk.expect(
        400,
        post_connect(walk, malformed).header(
            "Stripe-Signature",
            stripe_signature(&connect, now, malformed),
        ),
    )
    .await;
    walk.expect(
        413,
        post_connect(walk, &big).header("Stripe-Signature", stripe_signature(&connect, now, &big)),
    )
    .await;
    // The Connect route of an app without Stripe Connect.
    walk.expect(
        404,
        walk.anon(Method::POST, "/webhook/stripe_test/connect")
            .header("content-type", "application/json")
            .header("Stripe-Signature", signed(&body))
            .body(body.clone()),
    )
    .await;
    walk.expect(405, walk.anon(Method::GET, "/webhook/stripe_test/connect"))
        .await;
}

/// Sync, list, read, cancel; returns the id of a job that exists.
async fn jobs(walk: &mut Walk, app: &TestApp) -> String {
    let full = json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["product"]});
    let created = walk
        .expect(202, walk.admin(Method::POST, "/sync").json(&full))
        .await;
    let job = created["job_id"].as_str().unwrap().to_string();
    let bad_bodies = [
        (400, json!({"app_key": "stripe_test", "mode": "sideways"})),
        (
            400,
            json!({"app_key": "stripe_test", "resource_types": ["invoices"]}),
        ),
        (400, json!({"app_key": "stripe_test", "colour": "red"})),
        (404, json!({"app_key": "nope"})),
    ];
    for (status, body) in bad_bodies {
        walk.expect(status, walk.admin(Method::POST, "/sync").json(&body))
            .await;
    }
    walk.expect(400, walk.admin(Method::POST, "/sync").body("{not json"))
        .await;
    let big = vec![b' '; 32 * 1024];
    walk.expect(413, walk.admin(Method::POST, "/sync").body(big))
        .await;
    walk.expect(405, walk.admin(Method::GET, "/sync")).await;

    let list = walk.expect(200, walk.admin(Method::GET, "/jobs")).await;
    assert_eq!(list["jobs"][0]["job_id"], job.as_str());
    let filtered = "/jobs?app_key=stripe_test&status=pending&limit=5";
    walk.expect(200, walk.admin(Method::GET, filtered)).await;
    for bad in ["/jobs?status=sideways", "/jobs?limit=0", "/jobs?colour=red"] {
        walk.expect(400, walk.admin(Method::GET, bad)).await;
    }
    walk.expect(405, walk.admin(Method::DELETE, "/jobs")).await;

    for route in ["jobs", "job-status"] {
        let doc = walk
            .expect(200, walk.admin(Method::GET, &format!("/{route}/{job}")))
            .await;
        assert!(doc.get("tasks").is_none());
        let with_tasks = format!("/{route}/{job}?include_tasks=true");
        let doc = walk.expect(200, walk.admin(Method::GET, &with_tasks)).await;
        assert_eq!(doc["tasks"].as_array().map(Vec::len), Some(1));
        for bad in [
            format!("/{route}/not-a-uuid"),
            format!("/{route}/{job}?include_tasks=maybe"),
        ] {
            walk.expect(400, walk.admin(Method::GET, &bad)).await;
        }
        walk.expect(404, walk.admin(Method::GET, &format!("/{route}/{NIL}")))
            .await;
        walk.expect(405, walk.admin(Method::PUT, &format!("/{route}/{job}")))
            .await;
    }

    let cancel = format!("/jobs/{job}/cancel");
    let cancelled = walk.expect(200, walk.admin(Method::POST, &cancel)).await;
    assert_eq!(cancelled["status"], "cancelled");
    walk.expect(409, walk.admin(Method::POST, &cancel)).await;
    walk.expect(
        404,
        walk.admin(Method::POST, &format!("/jobs/{NIL}/cancel")),
    )
    .await;
    walk.expect(400, walk.admin(Method::POST, "/jobs/nope/cancel"))
        .await;
    walk.expect(405, walk.admin(Method::GET, &cancel)).await;

    // An immediate sync answers when the job ends; this test's workers are driven by hand.
    let immediate = json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["product"], "immediate": true});
    let req = walk.admin(Method::POST, "/sync").json(&immediate);
    let worker = Worker::new(app.ctx.clone());
    let drive = async {
        loop {
            let ran = worker
                .try_execute_task(&CancellationToken::new())
                .await
                .unwrap();
            if ran.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::select! {
            done = walk.expect(200, req) => done,
            () = drive => unreachable!(),
        }
    })
    .await
    .expect("the immediate sync answers within a minute");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["tasks"][0]["status"], "completed", "{done}");
    let ended = format!(
        "/job-status/{}?include_tasks=1",
        done["job_id"].as_str().unwrap()
    );
    walk.expect(200, walk.admin(Method::GET, &ended)).await;
    job
}

async fn operating(walk: &mut Walk, app: &TestApp) {
    let page = walk.expect(200, walk.admin(Method::GET, "/events")).await;
    assert!(page["pagination"]["total"].as_i64() > Some(0), "{page}");
    let filtered = "/events?app_key=stripe_test&service=stripe&event_type=customer.updated\
        &since=2020-01-01T00:00:00Z&until=2100-01-01T00:00:00Z&limit=10&offset=0";
    let page = walk.expect(200, walk.admin(Method::GET, filtered)).await;
    assert_eq!(page["filters"]["service"], "stripe");
    let bad = [
        "/events?service=fax",
        "/events?since=yesterday",
        "/events?limit=5000",
        "/events?offset=-1",
        "/events?colour=red",
    ];
    for path in bad {
        walk.expect(400, walk.admin(Method::GET, path)).await;
    }
    walk.expect(405, walk.admin(Method::POST, "/events")).await;

    // Slack is configured (200), Teams is not (400).
    let alerts = [
        json!({"title": "Walk", "message": "hello"}),
        json!({"title": "Walk", "message": "hello", "channels": ["teams"]}),
    ];
    for alert in alerts {
        let req = walk
            .admin(Method::POST, "/alerts")
            .json(&alert)
            .build()
            .unwrap();
        let resp = walk.http.execute(req).await.unwrap();
        let exchange = Exchange {
            method: "POST".into(),
            path: "/alerts".into(),
            query: Vec::new(),
            body: Some(alert),
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            answer: resp.bytes().await.unwrap(),
        };
        walk.expect_exchange(&[200, 400], exchange);
    }
    let blank = json!({"title": " ", "message": "hello"});
    walk.expect(400, walk.admin(Method::POST, "/alerts").json(&blank))
        .await;
    walk.expect(400, walk.admin(Method::POST, "/alerts").body("{nope"))
        .await;
    let big = vec![b' '; 32 * 1024];
    walk.expect(413, walk.admin(Method::POST, "/alerts").body(big))
        .await;
    walk.expect(405, walk.admin(Method::GET, "/alerts")).await;

    walk.expect(200, walk.anon(Method::GET, "/metrics")).await;
    walk.expect(405, walk.anon(Method::POST, "/metrics")).await;

    let health = walk.expect(200, walk.anon(Method::GET, "/health")).await;
    assert_eq!(health["status"], "ok", "{health}");
    for _ in 0..20 {
        app.ctx
            .ops
            .breakers
            .failure("stripe_test", "the walk says so");
    }
    let health = walk.expect(200, walk.anon(Method::GET, "/health")).await;
    assert_eq!(health["status"], "degraded", "{health}");
    walk.expect(405, walk.anon(Method::DELETE, "/health")).await;
    let ready = walk.expect(200, walk.anon(Method::GET, "/readyz")).await;
    assert_eq!(
        ready["schema"]["database"], ready["schema"]["binary"],
        "{ready}"
    );
    walk.expect(405, walk.anon(Method::POST, "/readyz")).await;
    walk.expect(200, walk.anon(Method::GET, "/livez")).await;
    walk.expect(405, walk.anon(Method::PUT, "/livez")).await;
}

/// Bodies that never finish: 408 from every route that reads one.
async fn slow_bodies(walk: &mut Walk) {
    let bearer = format!("Authorization: Bearer {ADMIN_KEY}\r\n");
    // A signature header that reads well and is on time: only the body can refuse it, so the
    // body is waited for.
    let now = chrono::Utc::now().timestamp();
    let signature = format!("Stripe-Signature: t={now},v1={}\r\n", "0".repeat(64));
    let (webhook, connect, sync, alerts) = tokio::join!(
        slow_body(&walk.base, "/webhook/stripe_test", &signature),
        slow_body(&walk.base, "/webhook/stripe_connect/connect", &signature),
        slow_body(&walk.base, "/sync", &bearer),
        slow_body(&walk.base, "/alerts", &bearer),
    );
    for exchange in [webhook, connect, sync, alerts] {
        walk.expect_exchange(&[408], exchange);
    }
}

/// Tables gone from under the daemon: database errors that are not an outage answer 500, with
/// nothing of the cause.
async fn broken_tables(walk: &mut Walk, app: &TestApp, job: &str) {
    app.db()
        .await
        .batch_execute(
            "ALTER TABLE supasaasy.sync_jobs RENAME TO sync_jobs_away;
             ALTER TABLE supasaasy.integration_events RENAME TO integration_events_away;",
        )
        .await
        .unwrap();
    let sync = json!({"app_key": "stripe_test"});
    let requests = [
        walk.admin(Method::POST, "/sync").json(&sync),
        walk.admin(Method::GET, "/jobs"),
        walk.admin(Method::GET, &format!("/jobs/{job}")),
        walk.admin(Method::GET, &format!("/job-status/{job}")),
        walk.admin(Method::POST, &format!("/jobs/{job}/cancel")),
        walk.admin(Method::GET, "/events"),
    ];
    for req in requests {
        let body = walk.expect(500, req).await;
        assert_eq!(body, json!({"error": "internal error"}));
    }
}

/// The database dropped: 503 from every route that needs it; the others still answer.
async fn database_gone(walk: &mut Walk, app: &TestApp, job: &str) {
    let url = app.ctx.config.database.url.expose().to_string();
    let name = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    let server = supasaasy::db::connect(&with_dbname(&url, "postgres"))
        .await
        .unwrap();
    server
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();

    let health = walk.expect(503, walk.anon(Method::GET, "/health")).await;
    assert_eq!(health["status"], "down");
    let ready = walk.expect(503, walk.anon(Method::GET, "/readyz")).await;
    assert_eq!(ready["status"], "not_ready");
    // The process still serves.
    walk.expect(200, walk.anon(Method::GET, "/livez")).await;
    let fake = app.fake();
    let id = fake.ids("customer")[1].clone();
    fake.update("customer", &id, |c| c["name"] = json!("Unwritten"));
    let body = serde_json::to_vec(&fake.last_event().unwrap()).unwrap();
    let sig = stripe_signature(
        &webhook_secret("stripe_test"),
        chrono::Utc::now().timestamp(),
        &body,
    );
    let webhook = walk
        .anon(Method::POST, "/webhook/stripe_test")
        .header("Stripe-Signature", sig)
        .body(body.clone());
    walk.expect(503, webhook).await;
    let sig = stripe_signature(
        &connect_secret("stripe_connect"),
        chrono::Utc::now().timestamp(),
        &body,
    );
    let webhook = walk
        .anon(Method::POST, "/webhook/stripe_connect/connect")
        .header("Stripe-Signature", sig)
        .body(body);
    walk.expect(503, webhook).await;
    let sync = json!({"app_key": "stripe_test"});
    let requests = [
        walk.admin(Method::POST, "/sync").json(&sync),
        walk.admin(Method::GET, "/jobs"),
        walk.admin(Method::GET, &format!("/jobs/{job}")),
        walk.admin(Method::GET, &format!("/job-status/{job}")),
        walk.admin(Method::POST, &format!("/jobs/{job}/cancel")),
        walk.admin(Method::GET, "/events"),
    ];
    for req in requests {
        walk.expect(503, req).await;
    }
    walk.expect(200, walk.anon(Method::GET, "/metrics")).await;
}
