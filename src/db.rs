//! Connections to Postgres: the pool every part of the daemon shares, and schema migrations.
//!
//! Every connection (pooled, LISTEN, migrations, the CLI's) is opened through one [`Target`], so
//! the URL's TLS settings hold for all of them.
//!
//! Migrations are the refinery SQL files of `migrations/`, embedded in the binary. They run under a
//! Postgres advisory lock, so several daemons starting at once against one database migrate it once,
//! and only forward: a schema newer than the binary is run against when it says the binary is
//! compatible (see [`schema`]), never migrated.

use anyhow::Context;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

pub mod schema;
mod target;
mod tls;

pub use target::{PgConnection, SslMode, Target, TargetError};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long opening a pooled connection may take, when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free pooled connection before it gets an error.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Key of the advisory lock held while migrating ("supasaasy" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x7375_7061_7361_6173;

/// Builds the connection pool of `size` connections; they are opened lazily.
///
/// # Errors
///
/// When the pool cannot be built.
pub fn pool(target: &Target, size: usize) -> anyhow::Result<Pool> {
    let manager = Manager::from_config(
        target.pg_config().clone(),
        target.tls(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .wait_timeout(Some(POOL_WAIT_TIMEOUT))
        .build()
        .context("building the database pool")
}

/// Opens one connection to a database URL outside any config (tests, tools), driven on a
/// background task.
///
/// # Errors
///
/// When the URL does not parse or the database cannot be reached.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let target = Target::parse(url)?;
    target
        .connect()
        .await
        .with_context(|| format!("connecting to the database at {target}"))
}

/// The newest migration this binary carries.
pub fn binary_schema_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

/// Reads where a database's schema stands against this binary.
///
/// # Errors
///
/// A database error.
pub async fn schema_of(
    client: &impl tokio_postgres::GenericClient,
) -> Result<schema::Schema, tokio_postgres::Error> {
    schema::read(client, binary_schema_version()).await
}

/// Brings the schema up to date; see [`prepare`].
///
/// # Errors
///
/// As [`prepare`].
pub async fn migrate(target: &Target) -> anyhow::Result<()> {
    prepare(target, true).await
}

/// Makes sure this binary can run against the database: migrates an older schema when `migrate`
/// is on (refuses it when off), runs against a newer one that says it is compatible, refuses an
/// incompatible one. A refusal is one line naming both versions.
///
/// # Errors
///
/// When the database cannot be reached, a migration fails, or the schema is refused.
pub async fn prepare(target: &Target, migrate: bool) -> anyhow::Result<()> {
    let mut client = target
        .connect()
        .await
        .with_context(|| format!("connecting to the database at {target}"))?;
    if !migrate {
        let schema = schema_of(&client).await?;
        return match schema.verdict() {
            schema::Verdict::Behind => anyhow::bail!(schema.behind_message()),
            schema::Verdict::Refused(why) => anyhow::bail!(why),
            _ => Ok(()),
        };
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = migrate_locked(&mut client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    result
}

/// Migrates under the lock, when the schema is behind.
async fn migrate_locked(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    let schema = schema_of(&*client).await?;
    match schema.verdict() {
        schema::Verdict::Current => return Ok(()),
        schema::Verdict::Refused(why) => anyhow::bail!(why),
        schema::Verdict::AheadCompatible => {
            tracing::info!(
                database = schema.database,
                binary = schema.binary,
                "the database schema is newer than this binary and compatible with it: not migrating"
            );
            return Ok(());
        }
        schema::Verdict::Behind => {}
    }
    client
        .batch_execute("CREATE SCHEMA IF NOT EXISTS supasaasy")
        .await?;
    let report = embedded::migrations::runner()
        .set_migration_table_name("supasaasy.schema_migrations")
        .run_async(client)
        .await
        .context("running migrations")?;
    for m in report.applied_migrations() {
        tracing::info!(migration = %m, "applied migration");
    }
    Ok(())
}

/// Whether a failure to reach the database may pass by itself (a server not up yet, restarting,
/// full, or unreachable for now), as opposed to one that needs the operator (a refused certificate
/// or password, a database that does not exist, a refused schema).
pub fn is_transient(e: &anyhow::Error) -> bool {
    for cause in e.chain() {
        if let Some(pg) = cause.downcast_ref::<tokio_postgres::Error>() {
            if let Some(db) = pg.as_db_error() {
                // cannot_connect_now (starting up, shutting down), too_many_connections,
                // admin_shutdown, crash_shutdown.
                return matches!(db.code().code(), "57P03" | "53300" | "57P01" | "57P02");
            }
            if pg.to_string().starts_with("timeout") {
                return true;
            }
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | NotConnected
                    | AddrNotAvailable
                    | TimedOut
                    | UnexpectedEof
                    | HostUnreachable
                    | NetworkUnreachable
            ) || io.to_string().contains("failed to lookup address");
        }
    }
    false
}
