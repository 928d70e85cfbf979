//! The test harness: a real Postgres (a throwaway cluster started once per test binary, or the
//! server of `DATABASE_URL` when set), one fresh database per test cloned from a migrated template,
//! a fake Stripe per app on port 0, and the daemon's listener on port 0.

use std::time::Duration;

use serde_json::Value;
use supasaasy::config::Config;
use supasaasy::context::Context;
use supasaasy::worker::Worker;
use supasaasy_testkit::fake_intercom::{FakeIntercom, IntercomData};
use supasaasy_testkit::fake_stripe::{FakeStripe, StripeData};
use supasaasy_testkit::pg::TestPostgres;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// The Postgres server tests create their databases on, and the migrated template.
struct Server {
    /// Kept alive for the whole test binary; its watchdog removes it when the process exits.
    _cluster: Option<TestPostgres>,
    /// URL of the server's maintenance database.
    admin_url: String,
    /// Name of the migrated template database.
    template: String,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

pub use supasaasy_testkit::pg::with_dbname;

async fn server() -> &'static Server {
    SERVER
        .get_or_init(|| async {
            let (cluster, admin_url) = match std::env::var("DATABASE_URL") {
                Ok(url) if !url.is_empty() => (None, url),
                _ => {
                    let pg = TestPostgres::start().expect("starting a throwaway Postgres");
                    let url = pg.url("postgres");
                    (Some(pg), url)
                }
            };
            let template = format!("supasaasy_tmpl_{}", std::process::id());
            let admin = supasaasy::db::connect(&admin_url)
                .await
                .expect("connecting to Postgres");
            for statement in [
                format!("DROP DATABASE IF EXISTS {template}"),
                format!("CREATE DATABASE {template}"),
            ] {
                admin
                    .batch_execute(&statement)
                    .await
                    .expect("creating the template database");
            }
            let target = supasaasy::db::Target::parse(&with_dbname(&admin_url, &template))
                .expect("a database URL");
            supasaasy::db::migrate(&target)
                .await
                .expect("migrating the template");
            Server {
                _cluster: cluster,
                admin_url,
                template,
            }
        })
        .await
}

/// Creates an empty database (no schema yet) and returns its URL.
pub async fn empty_database() -> String {
    let server = server().await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = supasaasy::db::connect(&server.admin_url)
        .await
        .expect("connecting to Postgres");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("creating an empty database");
    with_dbname(&server.admin_url, &name)
}

/// Creates a fresh, migrated database and returns its URL.
pub async fn fresh_database() -> String {
    let server = server().await;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = supasaasy::db::connect(&server.admin_url)
        .await
        .expect("connecting to Postgres");
    let mut tries = 0;
    loop {
        // The template's last connection may still be closing; CREATE DATABASE then refuses.
        match admin
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE {}",
                server.template
            ))
            .await
        {
            Ok(()) => break,
            Err(e) if tries < 50 => {
                tries += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("creating a test database: {e}"),
        }
    }
    with_dbname(&server.admin_url, &name)
}

/// One configured app of a test daemon and its fake provider.
pub struct TestStripe {
    pub app_key: String,
    pub fake: FakeStripe,
}

/// One configured Intercom app of a test daemon and its fake.
pub struct TestIntercom {
    pub app_key: String,
    pub fake: FakeIntercom,
}

/// What a test sets up.
pub struct Setup {
    /// Apps: key and the data its fake Stripe serves.
    pub apps: Vec<(String, StripeData)>,
    /// Extra TOML for each `[[apps]]` entry (`sync_from = ...`).
    pub app_extra: String,
    /// Run the worker pool in the background (otherwise tests drive tasks themselves).
    pub workers: bool,
    /// `[worker]` section body.
    pub worker_toml: String,
    /// More top-level sections (`[webhook_logging]`, `[[sync_schedules]]`).
    pub extra_toml: String,
    /// A database to use (migrated here) instead of a fresh one on the shared server.
    pub database_url: Option<String>,
    /// More `[server]` keys.
    pub server_toml: String,
    /// Intercom apps: key and the data its fake Intercom serves.
    pub intercom: Vec<(String, IntercomData)>,
    /// More environment variables the config may name (`SLACK_WEBHOOK_URL`).
    pub env: Vec<(String, String)>,
    /// `requests_per_second` of every app; 0 (no budget) unless a test is about the budget.
    pub requests_per_second: f64,
    /// Stripe apps with Stripe Connect enabled (all accounts, the secret [`connect_secret`]).
    pub connect_apps: Vec<String>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            apps: Vec::new(),
            app_extra: String::new(),
            workers: true,
            worker_toml: "concurrency = 4\npoll_interval_ms = 100\n".into(),
            extra_toml: String::new(),
            database_url: None,
            server_toml: String::new(),
            intercom: Vec::new(),
            env: Vec::new(),
            requests_per_second: 0.0,
            connect_apps: Vec::new(),
        }
    }
}

impl Setup {
    /// One Stripe app `stripe_test` with this data, syncing every resource.
    pub fn stripe(data: StripeData) -> Setup {
        Setup {
            apps: vec![("stripe_test".into(), data)],
            ..Setup::default()
        }
    }

    /// One Stripe app `stripe_test` syncing customers, products, prices, plans and subscriptions
    /// only: for tests of the sync machinery that count tasks, pages or requests, which the
    /// billing resources (and their per-customer lists) would only blur.
    pub fn classic(data: StripeData) -> Setup {
        Setup {
            app_extra: CLASSIC.into(),
            ..Setup::stripe(data)
        }
    }
}

/// `sync_resources` of [`Setup::classic`].
pub const CLASSIC: &str =
    "sync_resources = [\"customer\", \"product\", \"price\", \"plan\", \"subscription\"]\n";

/// A running daemon (listener, and workers when asked) over a fresh database.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub ctx: Context,
    pub stripes: Vec<TestStripe>,
    pub intercoms: Vec<TestIntercom>,
    pub cancel: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
    workers: Option<tokio::task::JoinHandle<()>>,
}

pub async fn spawn_app(setup: Setup) -> TestApp {
    if std::env::var_os("RUST_LOG").is_some() {
        supasaasy::telemetry::init();
    }
    let db_url = match setup.database_url {
        Some(url) => {
            let target = supasaasy::db::Target::parse(&url).expect("a database URL");
            supasaasy::db::migrate(&target).await.expect("migrating");
            url
        }
        None => fresh_database().await,
    };
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}\n[worker]\n{}\n{}\n",
        setup.server_toml, setup.worker_toml, setup.extra_toml
    );
    let mut stripes = Vec::new();
    let mut env = vec![
        ("DATABASE_URL".to_string(), db_url.clone()),
        ("ADMIN_API_KEY".to_string(), ADMIN_KEY.to_string()),
    ];
    env.extend(setup.env);
    for (app_key, data) in setup.apps {
        let key = data.api_key().to_string();
        let fake = FakeStripe::start(data).await;
        let var = format!("{}_KEY", app_key.to_uppercase());
        let whsec = format!("{}_WHSEC", app_key.to_uppercase());
        toml.push_str(&format!(
            "[[apps]]\napp_key = \"{app_key}\"\nconnector = \"stripe\"\napi_key_env = \"{var}\"\nwebhook_secret_env = \"{whsec}\"\nbase_url = \"{}\"\nrequests_per_second = {:?}\n{}\n",
            fake.base_url(),
            setup.requests_per_second,
            setup.app_extra
        ));
        if setup.connect_apps.contains(&app_key) {
            let var = format!("{}_CONNECT_WHSEC", app_key.to_uppercase());
            toml.push_str(&format!(
                "[apps.connect]\nenabled = true\nwebhook_secret_env = \"{var}\"\n\n"
            ));
            env.push((var, connect_secret(&app_key)));
        }
        env.push((var, key));
        env.push((whsec, webhook_secret(&app_key)));
        stripes.push(TestStripe { app_key, fake });
    }
    let mut intercoms = Vec::new();
    for (app_key, data) in setup.intercom {
        let fake = FakeIntercom::start(data).await;
        let (token_var, secret_var) = (
            format!("{}_TOKEN", app_key.to_uppercase()),
            format!("{}_SECRET", app_key.to_uppercase()),
        );
        toml.push_str(&format!(
            "[[apps]]\napp_key = \"{app_key}\"\nconnector = \"intercom\"\napi_key_env = \"{token_var}\"\nwebhook_secret_env = \"{secret_var}\"\nbase_url = \"{}\"\nrequests_per_second = {:?}\n\n",
            fake.base_url(),
            setup.requests_per_second
        ));
        env.push((token_var, fake.token().to_string()));
        env.push((secret_var, fake.client_secret().to_string()));
        intercoms.push(TestIntercom { app_key, fake });
    }
    let config = Config::parse(&toml, &|name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .expect("test config is valid");
    let ctx = Context::build(config).expect("building the context");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let cancel = CancellationToken::new();
    let server = tokio::spawn(supasaasy::http::serve(
        listener,
        ctx.clone(),
        cancel.clone(),
    ));
    let workers = setup
        .workers
        .then(|| tokio::spawn(Worker::new(ctx.clone()).run(cancel.clone())));
    TestApp {
        base,
        http: reqwest::Client::new(),
        ctx,

        stripes,
        intercoms,
        cancel,
        server: Some(server),
        workers,
    }
}

impl TestApp {
    pub fn fake(&self) -> &FakeStripe {
        &self.stripes[0].fake
    }

    /// A request with the admin key.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY)
    }

    /// POST /sync and the JSON answer (status asserted).
    pub async fn sync(&self, body: Value, expect: u16) -> Value {
        let resp = self
            .admin(reqwest::Method::POST, "/sync")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let json: Value = resp.json().await.unwrap();
        assert_eq!(status, expect, "POST /sync {body}: {json}");
        json
    }

    /// Polls a job until it ends and returns its document with tasks.
    pub async fn wait_job(&self, job_id: &str) -> Value {
        let id = uuid::Uuid::parse_str(job_id).unwrap();
        tokio::time::timeout(
            Duration::from_secs(120),
            supasaasy::sync::wait_for_end(&self.ctx, id, |_| {}),
        )
        .await
        .expect("the job ends within two minutes")
        .unwrap()
    }

    /// A database client.
    pub async fn db(&self) -> deadpool_postgres::Object {
        self.ctx.pool.get().await.unwrap()
    }

    /// Waits until `count_sql` (a `SELECT count(*)`) counts something: a session waiting for a
    /// lock a test holds, say.
    pub async fn wait_for_count(&self, count_sql: &str) {
        let db = self.db().await;
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let n: i64 = db.query_one(count_sql, &[]).await.unwrap().get(0);
                if n > 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("nothing counted by {count_sql}"));
    }

    /// Sorted external ids of an app's live rows of a collection.
    pub async fn live_ids(&self, app_key: &str, collection: &str) -> Vec<String> {
        let rows = self
            .db()
            .await
            .query(
                "SELECT external_id FROM supasaasy.entities
                  WHERE app_key = $1 AND collection_key = $2 AND deleted_at IS NULL ORDER BY 1",
                &[&app_key, &collection],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// Moves the clock of everything synced so far back to `unix` (as if the sync ran then),
    /// instead of waiting for the events list's settling minute to pass.
    pub async fn set_cursors(&self, unix: i64) {
        let db = self.db().await;
        db.execute(
            "UPDATE supasaasy.sync_state SET incremental_cursor = $1",
            &[&unix.to_string()],
        )
        .await
        .unwrap();
        db.execute(
            "UPDATE supasaasy.entities SET source_updated_at = LEAST(source_updated_at, to_timestamp($1))",
            &[&(unix as f64)],
        )
        .await
        .unwrap();
    }

    /// The status, pages, entity count and cursor of a job's (only) task.
    pub async fn task_row(&self, job: &str) -> (String, i32, i64, Option<String>) {
        let row = self
            .db()
            .await
            .query_one(
                "SELECT status, pages, entity_count, cursor FROM supasaasy.sync_tasks WHERE job_id = $1",
                &[&uuid::Uuid::parse_str(job).unwrap()],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2), row.get(3))
    }

    /// Stops the listener and the workers and waits for them.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
        if let Some(h) = self.workers.take() {
            let _ = h.await;
        }
    }
}

/// A `Stripe-Signature` of `body` by the app's secret at the current time.
pub fn sign_now(app_key: &str, body: &[u8]) -> String {
    supasaasy_testkit::fake_stripe::stripe_signature(
        &webhook_secret(app_key),
        chrono::Utc::now().timestamp(),
        body,
    )
}

/// The Connect endpoint's signing secret of a test app with Stripe Connect.
pub fn connect_secret(app_key: &str) -> String {
    format!("whsec_connect_{app_key}")
}

/// The webhook signing secret of a test app.
pub fn webhook_secret(app_key: &str) -> String {
    format!("whsec_test_{app_key}")
}

impl TestApp {
    /// POSTs a raw webhook body with a `Stripe-Signature` header (when given); status and JSON.
    pub async fn post_webhook(
        &self,
        app_key: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> (u16, Value) {
        self.post_signed(&format!("/webhook/{app_key}"), body, signature)
            .await
    }

    /// POSTs a raw body to `path` with a `Stripe-Signature` header (when given); status and JSON.
    pub async fn post_signed(
        &self,
        path: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(sig) = signature {
            req = req.header("Stripe-Signature", sig);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let json = resp.json().await.unwrap_or(Value::Null);
        (status, json)
    }

    /// Delivers an Intercom notification signed with the fake's client secret.
    pub async fn deliver_intercom(&self, app_key: &str, notification: &Value) -> (u16, Value) {
        let fake = &self
            .intercoms
            .iter()
            .find(|i| i.app_key == app_key)
            .unwrap()
            .fake;
        let body = serde_json::to_vec(notification).unwrap();
        let resp = self
            .http
            .post(format!("{}/webhook/{app_key}", self.base))
            .header("X-Hub-Signature", fake.sign(&body))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Signs an event with the app's secret at the current time and delivers it.
    pub async fn deliver(&self, app_key: &str, event: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(event).unwrap();
        self.post_webhook(app_key, &body, Some(&sign_now(app_key, &body)))
            .await
    }

    /// A row of the mirror: payload and whether it is a tombstone.
    pub async fn row(&self, app_key: &str, collection: &str, id: &str) -> Option<(Value, bool)> {
        self.db()
            .await
            .query_opt(
                "SELECT raw_payload, deleted_at IS NOT NULL FROM supasaasy.entities
                  WHERE app_key = $1 AND collection_key = $2 AND external_id = $3",
                &[&app_key, &collection, &id],
            )
            .await
            .unwrap()
            .map(|r| (r.get(0), r.get(1)))
    }

    /// Rows of a table, for "nothing changed" checks.
    pub async fn count(&self, table: &str) -> i64 {
        self.db()
            .await
            .query_one(&format!("SELECT count(*) FROM supasaasy.{table}"), &[])
            .await
            .unwrap()
            .get(0)
    }
}

/// `n` customers and one product with one price.
pub fn customers(n: usize) -> StripeData {
    StripeData::generate(&supasaasy_testkit::fake_stripe::Counts {
        customers: n,
        products: 1,
        prices_per_product: 1,
        subscriptions: 0,
        items_per_subscription: 1,
        canceled_every: 0,
        ..supasaasy_testkit::fake_stripe::Counts::default()
    })
}

/// The creation time of the `nth` oldest customer of `data`, and the same as a `sync_from` value.
pub fn nth_created(data: &StripeData, nth: usize) -> (i64, String) {
    let mut created: Vec<i64> = data
        .ids("customer")
        .iter()
        .map(|id| {
            data.get("customer", id).unwrap()["created"]
                .as_i64()
                .unwrap()
        })
        .collect();
    created.sort();
    let at = created[nth];
    let from = chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .to_rfc3339();
    (at, from)
}

/// Sorted ids of a fake's resource.
pub fn fake_ids(fake: &FakeStripe, resource: &str) -> Vec<String> {
    let mut ids = fake.ids(resource);
    ids.sort();
    ids
}
