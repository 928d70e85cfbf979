//! Connections to Postgres: the pool every part of the daemon shares, and schema migrations.
//!
//! Migrations are the refinery SQL files of `migrations/`, embedded in the binary. They run under a
//! Postgres advisory lock, so several daemons starting at once against one database migrate it once.

use anyhow::Context;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::DatabaseConfig;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long opening a database connection may take (unless the URL sets `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free pooled connection before it gets an error.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Key of the advisory lock held while migrating ("supasaasy" in ASCII, truncated).
const MIGRATION_LOCK: i64 = 0x7375_7061_7361_6173;

/// Builds the connection pool; connections are opened lazily.
///
/// # Errors
///
/// When the URL does not parse.
pub fn pool(config: &DatabaseConfig) -> anyhow::Result<Pool> {
    let mut pg: tokio_postgres::Config = config
        .url
        .expose()
        .parse()
        .context("database.url_env: the database URL does not parse")?;
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(CONNECT_TIMEOUT);
    }
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .wait_timeout(Some(POOL_WAIT_TIMEOUT))
        .build()
        .context("building the database pool")
}

/// Opens one connection outside the pool (migrations, LISTEN), driving it on a background task.
///
/// # Errors
///
/// When the database cannot be reached.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "database connection closed");
        }
    });
    Ok(client)
}

/// Brings the schema up to date.
///
/// # Errors
///
/// When the database cannot be reached or a migration fails.
pub async fn migrate(config: &DatabaseConfig) -> anyhow::Result<()> {
    let mut client = connect(config.url.expose())
        .await
        .context("connecting to the database to migrate")?;
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
