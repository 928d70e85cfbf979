//! `[server]`: the HTTP listener, its admin keys and the limits that keep one client from taking
//! it over (connections per address, a connection's life and requests, the webhook bodies held in
//! memory at once), checked into a [`ServerConfig`].

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use supasaasy_connector::Secret;

use super::{within, ConfigError, Env, DAY_SECS};

/// The shortest admin key accepted: a key anyone can guess in a few tries protects nothing.
const MIN_ADMIN_KEY_CHARS: usize = 16;
/// A gibibyte, the bound of the body sizes.
const GIB: i64 = 1 << 30;

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address the listener binds.
    pub listen: SocketAddr,
    /// Bearer key of the admin routes.
    pub admin_api_keys: Vec<Secret>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Connections served at once from one client address; more are refused, so one client
    /// cannot take every slot.
    pub max_connections_per_ip: usize,
    /// Requests one connection may make (keep-alive and pipelined alike); the last is answered
    /// with `Connection: close`.
    pub max_requests_per_connection: usize,
    /// How long a connection may stay open; then it closes once the request in hand is answered.
    pub connection_max_age: Duration,
    /// Bytes of webhook bodies held in memory at once, across requests: a delivery that cannot
    /// reserve its share in a moment is answered 503 with `Retry-After`.
    pub webhook_body_budget_bytes: usize,
    /// How long a stopping daemon gives in-flight requests and running tasks before it exits.
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request's headers, and then its body, and how long
    /// an answer may wait for the client to read any of it.
    pub read_timeout: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    admin_api_key_env: Option<OneOrMany>,
    max_body_bytes: Option<i64>,
    max_connections: Option<i64>,
    max_connections_per_ip: Option<i64>,
    max_requests_per_connection: Option<i64>,
    connection_max_seconds: Option<i64>,
    webhook_body_budget_bytes: Option<i64>,
    shutdown_grace_seconds: Option<i64>,
    read_timeout_seconds: Option<i64>,
}

/// A key that takes one name or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

pub(super) fn server(raw: RawServer, env: &Env) -> Result<ServerConfig, ConfigError> {
    let listen = raw.listen.as_deref().unwrap_or("127.0.0.1:8080");
    let seconds = |v: Option<i64>, default: i64, key: &str| -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(
            within(v.unwrap_or(default), key, DAY_SECS)? as u64,
        ))
    };
    let server = ServerConfig {
        listen: listen.parse().map_err(|_| {
            ConfigError::new(
                "server.listen",
                format!("{listen:?} is not an address like 127.0.0.1:8080"),
            )
        })?,
        admin_api_keys: admin_keys(env, raw.admin_api_key_env)?,
        max_body_bytes: within(
            raw.max_body_bytes.unwrap_or(1 << 20),
            "server.max_body_bytes",
            GIB,
        )?,
        max_connections: within(
            raw.max_connections.unwrap_or(1024),
            "server.max_connections",
            1_000_000,
        )?,
        max_connections_per_ip: within(
            raw.max_connections_per_ip.unwrap_or(64),
            "server.max_connections_per_ip",
            1_000_000,
        )?,
        max_requests_per_connection: within(
            raw.max_requests_per_connection.unwrap_or(1000),
            "server.max_requests_per_connection",
            1_000_000_000,
        )?,
        connection_max_age: seconds(
            raw.connection_max_seconds,
            600,
            "server.connection_max_seconds",
        )?,
        webhook_body_budget_bytes: within(
            raw.webhook_body_budget_bytes.unwrap_or(64 << 20),
            "server.webhook_body_budget_bytes",
            64 * GIB,
        )?,
        shutdown_grace: seconds(
            raw.shutdown_grace_seconds,
            30,
            "server.shutdown_grace_seconds",
        )?,
        read_timeout: seconds(raw.read_timeout_seconds, 15, "server.read_timeout_seconds")?,
    };
    if server.webhook_body_budget_bytes < server.max_body_bytes {
        return Err(ConfigError::new(
            "server.webhook_body_budget_bytes",
            format!(
                "must be at least server.max_body_bytes ({}), or the largest webhook could never be read",
                server.max_body_bytes
            ),
        ));
    }
    Ok(server)
}

/// The admin keys: every variable named must be set (for commands that need secrets) and hold at
/// least [`MIN_ADMIN_KEY_CHARS`] characters, and at least one must be named; several are accepted
/// at once, so a key can be rotated without a moment when clients holding the old or the new one
/// are refused. Commands that need no secrets take whatever is set (they never check a key).
fn admin_keys(env: &Env, names: Option<OneOrMany>) -> Result<Vec<Secret>, ConfigError> {
    let key = "server.admin_api_key_env";
    let names = match names {
        None => vec!["ADMIN_API_KEY".to_owned()],
        Some(OneOrMany::One(name)) => vec![name],
        Some(OneOrMany::Many(names)) if !names.is_empty() => names,
        Some(OneOrMany::Many(_)) => {
            return Err(ConfigError::new(key, "names no environment variable"))
        }
    };
    let mut keys = Vec::with_capacity(names.len());
    for name in &names {
        let Some(secret) = env.secret(key, name)? else {
            continue;
        };
        let length = secret.expose().chars().count();
        if env.secrets && length < MIN_ADMIN_KEY_CHARS {
            return Err(ConfigError::new(
                key,
                format!(
                    "environment variable {name} holds a key of {length} characters; \
                     at least {MIN_ADMIN_KEY_CHARS} are needed"
                ),
            ));
        }
        keys.push(secret);
    }
    Ok(keys)
}
