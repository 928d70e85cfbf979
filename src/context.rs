//! What every part of a running daemon shares: the validated config, the database pool, and one
//! connector per configured app. Built once at start-up and passed down; there are no globals.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use deadpool_postgres::Pool;
use supasaasy_connector::{AppSettings, Connector};

use crate::apply::group::GroupCommit;
use crate::config::{AppConfig, Config};
use crate::connect::OwnAccounts;
use crate::db;
use crate::ops::Ops;
use crate::slots::FairSlots;

/// The shared state of one daemon process.
#[derive(Clone)]
pub struct Context {
    /// The validated config.
    pub config: Arc<Config>,
    /// The Postgres pool.
    pub pool: Pool,
    /// One connector per app, by app key.
    pub connectors: Arc<HashMap<String, Arc<dyn Connector>>>,
    /// Events log, alerts, circuit breakers and metrics.
    pub ops: Ops,
    /// The lanes that apply webhook deliveries in batches.
    pub webhooks: GroupCommit,
    /// Listed pages this process holds at once, fetched and not yet written, across its tasks
    /// and their walkers: bounds the memory a backfill takes whatever the concurrency, shared
    /// fairly between the connected accounts of a Stripe Connect app.
    pub pages: FairSlots,
    /// The account each Connect app's own rows belong to, read once ([`crate::connect`]).
    pub own_accounts: OwnAccounts,
}

/// How many listed pages a process holds at once ([`Context::pages`]): enough requests in flight
/// to keep a 100-a-second budget busy at 150 ms a request, with room for the writes.
const PAGES_IN_FLIGHT: usize = 24;

impl Context {
    /// Builds the pool, the operating parts and the connectors. Opens no connection yet; must be
    /// called inside a Tokio runtime (the event writer and alert sender are background tasks).
    ///
    /// # Errors
    ///
    /// When the database URL does not parse or a connector cannot be built.
    pub fn build(config: Config) -> anyhow::Result<Context> {
        let pool = db::pool(&config.database.target, config.database.pool_size)?;
        let ops = Ops::start(&config, &pool);
        let lanes = webhook_lanes(config.database.pool_size);
        let webhooks = GroupCommit::start(
            pool.clone(),
            lanes,
            ops.breakers.clone(),
            ops.stopping.clone(),
        );
        let mut map = HashMap::new();
        for app in &config.apps {
            let connector = build_connector(app, &config, &ops)
                .with_context(|| format!("building the connector of app {}", app.app_key))?;
            map.insert(app.app_key.clone(), connector);
        }
        let own_accounts = OwnAccounts::new(
            config
                .apps
                .iter()
                .filter(|a| a.connect.is_some())
                .map(|a| a.app_key.as_str()),
        );
        Ok(Context {
            config: Arc::new(config),
            pool,
            connectors: Arc::new(map),
            ops,
            webhooks,
            pages: FairSlots::new(PAGES_IN_FLIGHT),
            own_accounts,
        })
    }

    /// The app and its connector.
    pub fn app(&self, app_key: &str) -> Option<(&AppConfig, &Arc<dyn Connector>)> {
        Some((self.config.app(app_key)?, self.connectors.get(app_key)?))
    }
}

/// Builds the connector of one app through its provider; its requests are counted in the
/// metrics.
fn build_connector(
    app: &AppConfig,
    config: &Config,
    ops: &Ops,
) -> Result<Arc<dyn Connector>, supasaasy_connector::ConnectorError> {
    let settings = AppSettings {
        request_timeout: config.worker.request_timeout,
        connect_timeout: config.worker.connect_timeout,
        requests_per_second: app.requests_per_second,
        ..AppSettings::new(&app.app_key, app.api_key.clone(), &app.base_url)
    }
    .with_observer(ops.metrics.observer(&app.app_key));
    (app.connector.build)(settings)
}

/// Lanes applying webhook batches: each holds a connection while it commits, so a few, leaving
/// the pool to the workers and the API.
fn webhook_lanes(pool_size: usize) -> usize {
    (pool_size / 4).clamp(1, 2)
}
