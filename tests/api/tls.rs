//! Postgres over TLS, as managed Postgres enforces it: a server with a certificate made for the
//! test that takes TCP connections only over TLS. The daemon syncs through it with `verify-full`;
//! a wrong CA, a wrong host name or `sslmode=disable` stop start-up with one line.

use std::process::Command;

use serde_json::json;
use supasaasy_testkit::certs::TestCa;
use supasaasy_testkit::pg::TestPostgres;

use crate::helpers::{customers, fake_ids, spawn_app, Setup, ADMIN_KEY};
use crate::process::BIN;
use crate::upgrades::the_error;

/// A TLS-only server whose certificate, signed by `ca`, names `localhost` only.
struct TlsServer {
    ca: TestCa,
    other_ca: TestCa,
    pg: TestPostgres,
}

impl TlsServer {
    fn start() -> TlsServer {
        let ca = TestCa::new("supasaasy-test-ca").expect("a CA");
        let other_ca = TestCa::new("another-ca").expect("another CA");
        let cert = ca
            .server_cert("server", &["localhost"])
            .expect("a server cert");
        let pg = TestPostgres::start_tls(&cert).expect("a Postgres with TLS");
        TlsServer { ca, other_ca, pg }
    }

    /// A URL of database `db` on `host`, with this query string.
    fn url(&self, host: &str, db: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/{db}?{query}", self.pg.port())
    }

    fn verify_full(&self, db: &str) -> String {
        self.url(
            "localhost",
            db,
            &format!(
                "sslmode=verify-full&sslrootcert={}",
                self.ca.cert().display()
            ),
        )
    }
}

/// Runs `supasaasy migrate` and `serve` against `url`; both must stop with one line holding each
/// of `wanted`.
fn refused_at_start(url: &str, wanted: &[&str]) {
    let dir = std::env::temp_dir().join(format!("supasaasy-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("supasaasy.toml");
    std::fs::write(&config, "[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    for command in ["migrate", "serve"] {
        let out = Command::new(BIN)
            .args(["--config", config.to_str().unwrap(), command])
            .env("DATABASE_URL", url)
            .env("ADMIN_API_KEY", ADMIN_KEY)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command} against {url}: {stderr}");
        // A config error is all there is; a refused database follows the "listening" line.
        let error = if stderr.starts_with("config error") {
            assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
            stderr.trim()
        } else {
            the_error(&stderr)
        };
        for want in wanted {
            assert!(
                error.contains(want),
                "{command}: wanted {want:?} in {stderr}"
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_daemon_syncs_through_a_postgres_that_enforces_tls() {
    let server = TlsServer::start();
    let admin = supasaasy::db::connect(&server.verify_full("postgres"))
        .await
        .expect("verify-full with the right CA and host name");
    admin.batch_execute("CREATE DATABASE mirror").await.unwrap();

    let mut setup = Setup::stripe(customers(250));
    setup.database_url = Some(server.verify_full("mirror"));
    let app = spawn_app(setup).await;
    let done = app
        .sync(
            json!({"app_key": "stripe_test", "mode": "full", "resource_types": ["customer"], "immediate": true}),
            200,
        )
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        app.live_ids("stripe_test", "stripe_customer").await,
        fake_ids(app.fake(), "customer")
    );
    // The pool's connections are encrypted.
    let ssl: bool = app
        .db()
        .await
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl);
    app.stop().await;

    // verify-ca checks the chain, not the name; require trusts any certificate.
    let ca = server.ca.cert();
    for url in [
        server.url(
            "127.0.0.1",
            "mirror",
            &format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
        ),
        server.url("127.0.0.1", "mirror", "sslmode=require"),
        server.url("127.0.0.1", "mirror", ""),
    ] {
        let client = supasaasy::db::connect(&url).await.expect(&url);
        let n: i64 = client
            .query_one("SELECT count(*) FROM supasaasy.entities", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 250, "{url}");
    }
}

#[test]
fn a_refused_certificate_or_plain_connection_stops_start_up_with_one_line() {
    let server = TlsServer::start();
    let other = server.other_ca.cert();
    refused_at_start(
        &server.url(
            "localhost",
            "postgres",
            &format!("sslmode=verify-full&sslrootcert={}", other.display()),
        ),
        &["sslmode=verify-full", "certificate", "UnknownIssuer"],
    );
    refused_at_start(
        &server.url(
            "127.0.0.1",
            "postgres",
            &format!(
                "sslmode=verify-full&sslrootcert={}",
                server.ca.cert().display()
            ),
        ),
        &["sslmode=verify-full", "not valid for name \"127.0.0.1\""],
    );
    refused_at_start(
        &server.url("localhost", "postgres", "sslmode=disable"),
        &["sslmode=disable", "no pg_hba.conf entry", "no encryption"],
    );
    refused_at_start(
        &server.url(
            "localhost",
            "postgres",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ),
        &[
            "database.url_env",
            "sslrootcert /nonexistent/ca.pem: cannot read it",
        ],
    );
    refused_at_start(
        &server.url("localhost", "postgres", "sslmode=always"),
        &["database.url_env", "sslmode \"always\""],
    );
}

#[tokio::test]
async fn a_unix_socket_connects_unencrypted_whatever_the_sslmode() {
    let server = TlsServer::start();
    let socket = server.pg.dir().join("sock");
    for query in ["", "&sslmode=prefer", "&sslmode=require"] {
        let url = format!(
            "postgres://postgres@/postgres?host={}&port={}{query}",
            socket.display(),
            server.pg.port()
        );
        let target = supasaasy::db::Target::parse(&url).unwrap();
        let client = target
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let row = client.query_one("SELECT 1", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
    }
}
