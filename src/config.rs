//! `supasaasy.toml`: parsed, checked and turned into the domain types the daemon runs on.
//!
//! Everything is validated here, at the edge, so that the rest of the daemon never meets a bad app
//! key, an unknown resource or a missing secret. A config error names the key at fault in one line
//! and nothing starts. Secrets never sit in the file: each is named by the environment variable that
//! holds it, read once here and wrapped in [`Secret`] so it never prints.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use supasaasy_connector::{Provider, Secret};

use crate::db::Target;

/// A config error: the key at fault and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("config error: {key}: {message}")]
pub struct ConfigError {
    /// The key at fault, as a path (`apps[0].sync_resources`).
    pub key: String,
    /// What is wrong, for the operator.
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the mirror and the queue live.
    pub database: DatabaseConfig,
    /// The HTTP listener.
    pub server: ServerConfig,
    /// The task workers of this process.
    pub worker: WorkerConfig,
    /// Whether webhook requests are logged to `supasaasy.webhook_logs`.
    pub webhook_logging: WebhookLoggingConfig,
    /// The provider app instances, in file order.
    pub apps: Vec<AppConfig>,
    /// Scheduled syncs.
    pub sync_schedules: Vec<ScheduleConfig>,
    /// Where alerts go and which ones are sent.
    pub alerts: AlertsConfig,
    /// When an app's circuit opens and for how long.
    pub circuit_breaker: CircuitBreakerConfig,
    /// The integration events log.
    pub events: EventsConfig,
}

/// `[database]`.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// The connection URL, read from the environment.
    pub url: Secret,
    /// The URL read: where to connect and with which TLS.
    pub target: Target,
    /// Connections in this process's pool.
    pub pool_size: usize,
    /// `serve` migrates the schema at start; when false it only checks it (sites that run
    /// `supasaasy migrate` as a release step, and roles without DDL rights).
    pub migrate: bool,
}

/// `[worker]`.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Tasks this process runs at once.
    pub concurrency: usize,
    /// How often idle workers look for tasks when no notification arrives.
    pub poll_interval: Duration,
    /// How long a claimed task stays ours without a heartbeat; then another worker may take it.
    pub lease: Duration,
    /// Attempts a task gets before it fails its job.
    pub max_attempts: i32,
    /// Provider request timeout.
    pub request_timeout: Duration,
    /// Provider connect timeout.
    pub connect_timeout: Duration,
    /// First delay of the provider-call backoff (doubled per retry, with jitter); a task handed
    /// back to the queue waits twenty times this, doubled per attempt.
    pub retry_base: Duration,
    /// Ended jobs (with their tasks) and schedule ticks older than this many days are deleted,
    /// each app's latest job per mode kept.
    pub job_retention_days: u32,
}

/// `[webhook_logging]`.
#[derive(Debug, Clone, Default)]
pub struct WebhookLoggingConfig {
    /// Log every webhook request.
    pub enabled: bool,
    /// Days a logged request is kept.
    pub retention_days: u32,
}

/// One `[[apps]]` entry.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// `^[a-z0-9_]{1,64}$`, unique; in webhook URLs and every mirror row.
    pub app_key: String,
    /// A human name.
    pub name: String,
    /// Which provider's connector serves it.
    pub connector: &'static Provider,
    /// The provider API key.
    pub api_key: Secret,
    /// The webhook signing secret, when webhooks are configured.
    pub webhook_secret: Option<Secret>,
    /// The provider's base URL.
    pub base_url: String,
    /// Resources synced when a job names none, in the connector's order.
    pub sync_resources: Vec<String>,
    /// Objects created before this are ignored.
    pub sync_from: Option<DateTime<Utc>>,
    /// At most this many provider requests start per second for this app, across its tasks and
    /// webhooks (`None`: no budget).
    pub requests_per_second: Option<f64>,
    /// How far before its last run an incremental run of a resource without events (balance
    /// transactions) lists again.
    pub trailing_window: chrono::Duration,
    /// Stripe Connect (`[apps.connect]`), when enabled.
    pub connect: Option<ConnectConfig>,
}

/// `[apps.connect]` of an app that enabled it.
#[derive(Debug, Clone)]
pub struct ConnectConfig {
    /// Which connected accounts are mirrored.
    pub accounts: ConnectAccounts,
    /// The Connect endpoint's signing secret, when Connect webhooks are configured.
    pub webhook_secret: Option<Secret>,
}

/// Which connected accounts an app mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectAccounts {
    /// Every account the platform lists.
    All,
    /// These, sorted.
    Only(Vec<String>),
}

impl ConnectAccounts {
    /// Whether `account` is mirrored.
    pub fn includes(&self, account: &str) -> bool {
        match self {
            ConnectAccounts::All => true,
            ConnectAccounts::Only(list) => {
                list.binary_search_by(|a| a.as_str().cmp(account)).is_ok()
            }
        }
    }
}

/// Sync mode of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Walk every object of each resource, then sweep the ones not seen.
    Full,
    /// Apply what changed since the last run.
    Incremental,
}

impl SyncMode {
    /// The name stored in `sync_jobs.mode` and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Full => "full",
            SyncMode::Incremental => "incremental",
        }
    }
}

impl FromStr for SyncMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(SyncMode::Full),
            "incremental" => Ok(SyncMode::Incremental),
            other => Err(format!(
                "unknown mode {other:?}: expected \"full\" or \"incremental\""
            )),
        }
    }
}

/// One `[[sync_schedules]]` entry.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// The app it syncs.
    pub app_key: String,
    /// The cron expression as written.
    pub cron: String,
    /// When it fires, in its time zone.
    pub schedule: cron_expr::Schedule,
    /// Sync mode of the jobs it enqueues.
    pub mode: SyncMode,
    /// Disabled schedules are kept but never fire.
    pub enabled: bool,
}

impl Config {
    /// Reads, parses and validates a config file, resolving secrets from the environment.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key at fault.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        let env = Env {
            lookup: &|name| std::env::var(name).ok(),
            secrets: true,
        };
        parse_with(&text, &env, std::env::vars())
    }

    /// [`Config::load`] for the commands that only talk to the database (`sync`, `jobs`): the
    /// variables naming provider, alert and admin secrets need not be set (those secrets come out
    /// empty); the database URL must be.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key at fault.
    pub fn load_for_database(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        let env = Env {
            lookup: &|name| std::env::var(name).ok(),
            secrets: false,
        };
        parse_with(&text, &env, std::env::vars())
    }

    /// Parses and validates config text; `env` looks up environment variables.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key at fault.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env {
            lookup: env,
            secrets: true,
        };
        parse_with(text, &env, std::iter::empty())
    }

    /// [`Config::parse`] with `vars` as the environment's variables, whose
    /// `SUPASAASY_<SECTION>__<KEY>` ones override the file's keys.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key at fault (and the variable, when one set it).
    pub fn parse_overridden(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let env = Env {
            lookup: env,
            secrets: true,
        };
        parse_with(text, &env, vars)
    }

    /// The `server.listen` of a config file (overrides applied, defaults filled in), without
    /// validating anything else or reading any secret: what `healthcheck` needs.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the file cannot be read or the address does not parse.
    pub fn listen_address(path: &Path) -> Result<SocketAddr, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        let mut doc: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::new("supasaasy.toml", e.message()))?;
        overrides::apply(&mut doc, std::env::vars())?;
        let listen = doc
            .get("server")
            .and_then(|s| s.get("listen"))
            .and_then(toml::Value::as_str)
            .unwrap_or("127.0.0.1:8080");
        listen.parse().map_err(|_| {
            ConfigError::new(
                "server.listen",
                format!("{listen:?} is not an address like 127.0.0.1:8080"),
            )
        })
    }

    /// The app with this key.
    pub fn app(&self, app_key: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.app_key == app_key)
    }
}

/// Parses the file, applies the environment's overrides, and validates the result.
fn parse_with(
    text: &str,
    env: &Env,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let Ok(mut doc) = text.parse::<toml::Table>() else {
        // Not TOML: the file's own error, with its line.
        return validate(parse_raw(text)?, env);
    };
    let applied = overrides::apply(&mut doc, vars)?;
    let raw = if applied.is_empty() {
        // Read from the text, so errors carry their line.
        parse_raw(text)?
    } else {
        serde_path_to_error::deserialize(toml::Value::Table(doc)).map_err(|err| {
            let key = err.path().to_string();
            // The message's first line: the rest repeats the key.
            let message = err.into_inner().to_string();
            let e = ConfigError::new(key, message.lines().next().unwrap_or_default().trim());
            overrides::name_the_var(e, &applied)
        })?
    };
    validate(raw, env).map_err(|e| overrides::name_the_var(e, &applied))
}

fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let line = inner
            .span()
            .map(|span| format!(" (line {})", text[..span.start].lines().count().max(1)))
            .unwrap_or_default();
        let key = if path == "." {
            "supasaasy.toml".to_string()
        } else {
            path
        };
        ConfigError::new(key, format!("{}{line}", inner.message().trim()))
    })
}

/// Where the database URL and the secrets come from.
struct Env<'a> {
    /// Looks a variable up (the process environment, or a test's map).
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Secrets (provider keys, webhook and alert URLs, the admin key) must be set; when false, a
    /// missing one comes out empty (commands that only talk to the database).
    secrets: bool,
}

impl Env<'_> {
    /// A variable as set, or `None`.
    fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.is_empty())
    }

    /// A variable that must be set, whatever the command.
    fn required(&self, key: &str, var: &str) -> Result<Secret, ConfigError> {
        self.var(var)
            .map(Secret::new)
            .ok_or_else(|| ConfigError::new(key, format!("environment variable {var} is not set")))
    }

    /// A secret: required unless the command needs none, then `None` when unset.
    fn secret(&self, key: &str, var: &str) -> Result<Option<Secret>, ConfigError> {
        match self.required(key, var) {
            Ok(secret) => Ok(Some(secret)),
            Err(_) if !self.secrets => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn validate(raw: RawConfig, env: &Env) -> Result<Config, ConfigError> {
    let url_env = raw.database.url_env.as_deref().unwrap_or("DATABASE_URL");
    let url = env.required("database.url_env", url_env)?;
    let target = Target::parse(url.expose())
        .map_err(|e| ConfigError::new("database.url_env", format!("{url_env}: {e}")))?;
    let database = DatabaseConfig {
        url,
        target,
        pool_size: within(
            raw.database.pool_size.unwrap_or(16),
            "database.pool_size",
            1_000,
        )?,
        migrate: raw.database.migrate.unwrap_or(true),
    };

    let server = server::server(raw.server, env)?;

    let w = raw.worker;
    let worker = WorkerConfig {
        concurrency: within(w.concurrency.unwrap_or(4), "worker.concurrency", 1_000)?,
        poll_interval: Duration::from_millis(within(
            w.poll_interval_ms.unwrap_or(1000),
            "worker.poll_interval_ms",
            HOUR_SECS * 1_000,
        )? as u64),
        lease: Duration::from_secs(within(
            w.lease_seconds.unwrap_or(60),
            "worker.lease_seconds",
            DAY_SECS,
        )? as u64),
        max_attempts: within(w.max_attempts.unwrap_or(3), "worker.max_attempts", 1_000)? as i32,
        request_timeout: Duration::from_secs(within(
            w.request_timeout_seconds.unwrap_or(30),
            "worker.request_timeout_seconds",
            HOUR_SECS,
        )? as u64),
        connect_timeout: Duration::from_secs(within(
            w.connect_timeout_seconds.unwrap_or(10),
            "worker.connect_timeout_seconds",
            HOUR_SECS,
        )? as u64),
        retry_base: Duration::from_millis(within(
            w.retry_base_ms.unwrap_or(250),
            "worker.retry_base_ms",
            HOUR_SECS * 1_000,
        )? as u64),
        job_retention_days: within(
            w.job_retention_days.unwrap_or(30),
            "worker.job_retention_days",
            CENTURY_DAYS,
        )? as u32,
    };
    if worker.lease < worker.request_timeout * 2 {
        return Err(ConfigError::new(
            "worker.lease_seconds",
            "must be at least twice worker.request_timeout_seconds, or a slow request loses the lease",
        ));
    }

    let webhook_logging = WebhookLoggingConfig {
        enabled: raw.webhook_logging.enabled.unwrap_or(false),
        retention_days: within(
            i64::from(raw.webhook_logging.retention_days.unwrap_or(7)),
            "webhook_logging.retention_days",
            CENTURY_DAYS,
        )? as u32,
    };

    let mut apps = Vec::with_capacity(raw.apps.len());
    let mut seen = HashSet::new();
    for (i, a) in raw.apps.into_iter().enumerate() {
        let app = apps::validate_app(i, a, env)?;
        if !seen.insert(app.app_key.clone()) {
            return Err(ConfigError::new(
                format!("apps[{i}].app_key"),
                format!("{:?} is used by another app", app.app_key),
            ));
        }
        apps.push(app);
    }

    let mut sync_schedules = Vec::with_capacity(raw.sync_schedules.len());
    for (i, s) in raw.sync_schedules.into_iter().enumerate() {
        let key = |k: &str| format!("sync_schedules[{i}].{k}");
        if !seen.contains(&s.app_key) {
            return Err(ConfigError::new(
                key("app_key"),
                format!("no app has app_key {:?}", s.app_key),
            ));
        }
        let schedule = cron_expr::parse_schedule(&s.cron, s.timezone.as_deref()).map_err(|m| {
            let field = if m.starts_with("timezone") {
                "timezone"
            } else {
                "cron"
            };
            ConfigError::new(key(field), m)
        })?;
        let mode = match s.mode.as_deref() {
            None => SyncMode::Incremental,
            Some(m) => m
                .parse()
                .map_err(|e: String| ConfigError::new(key("mode"), e))?,
        };
        sync_schedules.push(ScheduleConfig {
            app_key: s.app_key,
            cron: s.cron,
            schedule,
            mode,
            enabled: s.enabled.unwrap_or(true),
        });
    }

    Ok(Config {
        database,
        server,
        worker,
        webhook_logging,
        apps,
        sync_schedules,
        alerts: operating::alerts(raw.alerts, env)?,
        circuit_breaker: operating::circuit_breaker(raw.circuit_breaker)?,
        events: operating::events(raw.events)?,
    })
}

/// `v` when it lies between 1 and `max`: past a sane bound a number is a mistake (a lease of
/// centuries overflows every timestamp it is added to), and start-up says which key.
fn within(v: i64, key: &str, max: i64) -> Result<usize, ConfigError> {
    if v <= 0 {
        Err(ConfigError::new(key, format!("must be positive, got {v}")))
    } else if v > max {
        Err(ConfigError::new(
            key,
            format!("must be at most {max}, got {v}"),
        ))
    } else {
        Ok(v as usize)
    }
}

/// A day, an hour and a hundred years, the bounds of most keys.
const DAY_SECS: i64 = 86_400;
const HOUR_SECS: i64 = 3_600;
const CENTURY_DAYS: i64 = 36_500;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    server: server::RawServer,
    #[serde(default)]
    worker: RawWorker,
    #[serde(default)]
    webhook_logging: RawWebhookLogging,
    #[serde(default)]
    apps: Vec<apps::RawApp>,
    #[serde(default)]
    sync_schedules: Vec<RawSchedule>,
    #[serde(default)]
    alerts: operating::RawAlerts,
    #[serde(default)]
    circuit_breaker: operating::RawCircuitBreaker,
    #[serde(default)]
    events: operating::RawEvents,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url_env: Option<String>,
    pool_size: Option<i64>,
    migrate: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWorker {
    concurrency: Option<i64>,
    poll_interval_ms: Option<i64>,
    lease_seconds: Option<i64>,
    max_attempts: Option<i64>,
    request_timeout_seconds: Option<i64>,
    connect_timeout_seconds: Option<i64>,
    retry_base_ms: Option<i64>,
    job_retention_days: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWebhookLogging {
    enabled: Option<bool>,
    retention_days: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    app_key: String,
    cron: String,
    mode: Option<String>,
    enabled: Option<bool>,
    timezone: Option<String>,
}

mod apps;
pub mod cron_expr;
mod effective;
mod operating;
mod overrides;
mod server;

pub use operating::{AlertKind, AlertsConfig, CircuitBreakerConfig, EventsConfig};
pub use server::ServerConfig;

#[cfg(test)]
mod tests;

/// True for an `http://` or `https://` URL (base URLs, alert webhook URLs).
fn is_http_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}
