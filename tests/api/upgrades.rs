//! Starting where operators start things: before the database is up (probes meanwhile), with
//! migrations off, against a schema newer than the binary (a rollback), as a role without DDL
//! rights, and the command line's `sync` and `jobs` without provider secrets.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use supasaasy_testkit::fake_stripe::FakeStripe;
use supasaasy_testkit::pg::TestPostgres;

use crate::helpers::{customers, empty_database, fake_ids, fresh_database, ADMIN_KEY};
use crate::process::{serve, BIN};

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[worker]
poll_interval_ms = 100

[[apps]]
app_key = "stripe_prod"
connector = "stripe"
api_key_env = "STRIPE_API_KEY"
base_url_env = "STRIPE_BASE_URL"
"#;

fn config_file(text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "supasaasy-upgrade-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("supasaasy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A `supasaasy` command with the test's environment.
fn supasaasy(config: &std::path::Path, db_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("RUST_LOG", "info")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("ADMIN_API_KEY", ADMIN_KEY)
        .env("STRIPE_API_KEY", "sk_test_upgrades")
        .env("STRIPE_BASE_URL", "http://127.0.0.1:9");
    cmd
}

/// The one line saying why a command stopped: its last line, the only one that is an error (a
/// daemon may have logged that it listens before it found the database wanting).
pub fn the_error(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr.trim().lines().collect();
    let errors = lines
        .iter()
        .filter(|l| l.starts_with("error") || l.contains(" ERROR ") || l.contains(" WARN "))
        .count();
    assert_eq!(errors, 1, "one error line: {stderr}");
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("error: "),
        "the last line is the error: {stderr}"
    );
    last
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a command to its end; exit code and stderr.
fn run(mut cmd: Command) -> (Option<i32>, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_started_before_its_database_waits_for_it_and_probes_tell() {
    let pg = TestPostgres::start().expect("a Postgres of its own");
    let db_url = pg.url("postgres");
    pg.stop_server().expect("the database goes down");
    let config = config_file(CONFIG);
    let daemon = serve(supasaasy(&config, &db_url, &["serve"]));
    let line = daemon.await_log("cannot be reached yet");
    assert!(line.contains("attempt=1"), "{line}");
    assert_eq!(daemon.get("/livez").await, (200, json!({"status": "ok"})));
    // What a container's HEALTHCHECK runs: live while the database is down.
    let url = format!("http://{}/livez", daemon.addr);
    let (code, stderr) = run(supasaasy(&config, &db_url, &["healthcheck", "--url", &url]));
    assert_eq!(code, Some(0), "{stderr}");
    let nobody = format!("[server]\nlisten = \"127.0.0.1:{}\"\n", free_port());
    let (code, _) = run(supasaasy(&config_file(&nobody), &db_url, &["healthcheck"]));
    assert_eq!(code, Some(1), "nothing listens there");
    let (status, ready) = daemon.get("/readyz").await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (503, Some("not_ready")),
        "{ready}"
    );
    daemon.await_log("attempt=2");

    pg.start_server().expect("the database comes up");
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let (status, ready) = daemon.get("/readyz").await;
            if status == 200 {
                return ready;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("ready once the database is up and migrated");
    assert_eq!(ready["schema"]["database"], ready["schema"]["binary"]);
    assert_eq!(daemon.stop().await, Some(0));
}

#[tokio::test]
async fn with_migrations_off_an_old_schema_is_refused_with_one_line() {
    let db_url = empty_database().await;
    let config = config_file(CONFIG);
    let binary = supasaasy::db::binary_schema_version();
    for cmd in [
        supasaasy(&config, &db_url, &["serve", "--no-migrate"]),
        supasaasy(
            &config_file(&format!("[database]\nmigrate = false\n{CONFIG}")),
            &db_url,
            &["serve"],
        ),
        supasaasy(&config, &db_url, &["jobs"]),
        supasaasy(&config, &db_url, &["sync", "stripe_prod"]),
    ] {
        let (code, stderr) = run(cmd);
        assert_ne!(code, Some(0), "{stderr}");
        let error = the_error(&stderr);
        assert!(
            error.contains(&format!("schema is at V0 and this binary needs V{binary}"))
                && error.contains("supasaasy migrate"),
            "{stderr}"
        );
    }
    // `migrate` as a release step, then the same start works.
    let (code, stderr) = run(supasaasy(&config, &db_url, &["migrate"]));
    assert_eq!(code, Some(0), "{stderr}");
    let daemon = serve(supasaasy(&config, &db_url, &["serve", "--no-migrate"]));
    assert_eq!(daemon.get("/readyz").await.0, 200);
    assert_eq!(daemon.stop().await, Some(0));
}

#[tokio::test]
async fn a_newer_schema_is_run_against_when_compatible_and_refused_otherwise() {
    let db_url = fresh_database().await;
    let binary = supasaasy::db::binary_schema_version();
    let newer = binary + 1;
    let db = supasaasy::db::connect(&db_url).await.unwrap();
    // A release ahead of this binary migrated the database (a rollback, or a rolling upgrade).
    db.execute(
        "INSERT INTO supasaasy.schema_migrations (version, name, applied_on, checksum)
         VALUES ($1, 'from_the_future', now()::text, '0')",
        &[&(newer as i32)],
    )
    .await
    .unwrap();
    let config = config_file(CONFIG);
    let daemon = serve(supasaasy(&config, &db_url, &["serve"]));
    let (status, ready) = daemon.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        ready["schema"],
        json!({"database": newer, "binary": binary})
    );
    assert_eq!(daemon.stop().await, Some(0));

    // A schema that no longer works with binaries this old.
    db.execute(
        "UPDATE supasaasy.schema_compat SET compatible_from = $1",
        &[&(newer as i32)],
    )
    .await
    .unwrap();
    for args in [
        &["serve"][..],
        &["migrate"],
        &["serve", "--no-migrate"],
        &["jobs"],
    ] {
        let (code, stderr) = run(supasaasy(&config, &db_url, args));
        assert_ne!(code, Some(0), "{args:?}: {stderr}");
        let error = the_error(&stderr);
        assert!(
            error.contains(&format!("V{newer}")) && error.contains(&format!("V{binary}")),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_migrations_off_the_daemon_runs_as_a_role_without_ddl_rights() {
    let db_url = fresh_database().await;
    let name = db_url.rsplit('/').next().unwrap().to_string();
    let owner = supasaasy::db::connect(&db_url).await.unwrap();
    let role = format!("mirror_rw_{}", &name[2..10]);
    owner
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             GRANT CONNECT ON DATABASE {name} TO {role};
             GRANT USAGE ON SCHEMA supasaasy TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA supasaasy TO {role};
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA supasaasy TO {role};
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA supasaasy TO {role};"
        ))
        .await
        .unwrap();
    let role_url = db_url.replacen("postgres@", &format!("{role}@"), 1);
    // The role cannot change the schema.
    let as_role = supasaasy::db::connect(&role_url).await.unwrap();
    let denied = as_role
        .batch_execute("CREATE TABLE supasaasy.nope (x int)")
        .await
        .unwrap_err();
    assert!(
        denied.to_string().contains("permission denied") || format!("{denied:?}").contains("42501")
    );

    let fake = FakeStripe::start(customers(300)).await;
    let config = config_file(CONFIG);
    let daemon = serve({
        let mut cmd = supasaasy(&config, &role_url, &["serve", "--no-migrate"]);
        cmd.env("STRIPE_API_KEY", fake.api_key())
            .env("STRIPE_BASE_URL", fake.base_url());
        cmd
    });
    let done: Value = reqwest::Client::new()
        .post(format!("http://{}/sync", daemon.addr))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"app_key": "stripe_prod", "mode": "full", "resource_types": ["customer"], "immediate": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "completed", "{done}");
    let mirrored: i64 = owner
        .query_one("SELECT count(*) FROM supasaasy.stripe_customers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(mirrored as usize, fake_ids(&fake, "customer").len());
    assert_eq!(daemon.stop().await, Some(0));
}

#[tokio::test]
async fn sync_and_jobs_need_no_provider_secrets_and_never_migrate() {
    let db_url = fresh_database().await;
    let config = config_file(CONFIG);
    let bare = |args: &[&str]| {
        let mut cmd = supasaasy(&config, &db_url, args);
        cmd.env_remove("STRIPE_API_KEY").env_remove("ADMIN_API_KEY");
        cmd
    };
    let out = bare(&["sync", "stripe_prod", "--full"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(uuid::Uuid::parse_str(&job).is_ok(), "{job}");
    let out = bare(&["jobs"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&job));
    // `serve` still needs them, naming the variable.
    let (code, stderr) = run(bare(&["serve"]));
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("STRIPE_API_KEY is not set") || stderr.contains("ADMIN_API_KEY is not set"),
        "{stderr}"
    );
}
