//! Connections to Postgres: the pool every part of the daemon shares, and schema migrations.
//!
//! Every connection (pooled, LISTEN, migrations, the CLI's) is opened through one [`Target`], so
//! the URL's TLS settings hold for all of them.
//!
//! Migrations are the refinery SQL files of `migrations/`, embedded in the binary. They run under a
//! Postgres advisory lock, so several daemons starting at once against one database migrate it once.

use anyhow::Context;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};

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

/// Brings the schema up to date.
///
/// # Errors
///
/// When the database cannot be reached or a migration fails.
pub async fn migrate(target: &Target) -> anyhow::Result<()> {
    let mut client = target
        .connect()
        .await
        .with_context(|| format!("connecting to the database at {target} to migrate"))?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    client
        .batch_execute("CREATE SCHEMA IF NOT EXISTS supasaasy")
        .await?;
    let report = embedded::migrations::runner()
        .set_migration_table_name("supasaasy.schema_migrations")
        .run_async(&mut client)
        .await
        .context("running migrations");
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    for m in report?.applied_migrations() {
        tracing::info!(migration = %m, "applied migration");
    }
    Ok(())
}
