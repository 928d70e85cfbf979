//! The operating sections of `supasaasy.toml`: `[alerts]`, `[circuit_breaker]` and `[events]`.
//!
//! All three are optional. Alert URLs carry tokens, so like every secret they are named by the
//! environment variable that holds them and kept in a [`Secret`].

use std::time::Duration;

use serde::Deserialize;
use supasaasy_connector::Secret;

use super::{within, ConfigError, Env, CENTURY_DAYS, DAY_SECS};

/// What raises an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// A sync job ended failed.
    JobFailed,
    /// An app's circuit opened: its provider keeps failing.
    CircuitOpen,
    /// A burst of webhooks was refused (bad signatures: an attack, or a secret rotated without us).
    WebhookRejections,
}

impl AlertKind {
    /// Every kind, in config order.
    pub const ALL: [AlertKind; 3] = [
        AlertKind::JobFailed,
        AlertKind::CircuitOpen,
        AlertKind::WebhookRejections,
    ];

    /// The name in `alerts.on`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::JobFailed => "job_failed",
            AlertKind::CircuitOpen => "circuit_open",
            AlertKind::WebhookRejections => "webhook_rejections",
        }
    }
}

/// `[alerts]`.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// A Slack incoming-webhook URL.
    pub slack_webhook_url: Option<Secret>,
    /// A Microsoft Teams incoming-webhook (or workflow) URL.
    pub teams_webhook_url: Option<Secret>,
    /// The kinds that raise an alert.
    pub on: Vec<AlertKind>,
    /// The same alert for the same app is sent at most once per this window.
    pub repeat_after: Duration,
}

/// `[circuit_breaker]`: per app, around every request to its provider.
#[derive(Debug, Clone)]
pub struct CircuitBreakerConfig {
    /// Consecutive failed requests (after in-place retries) that open the circuit.
    pub failure_threshold: u32,
    /// How long it stays open before one probe request decides.
    pub open_for: Duration,
}

/// `[events]`: the integration events log.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Record webhook outcomes, alerts and circuit changes (job starts and ends are always
    /// recorded: they are written with the job).
    pub enabled: bool,
    /// Events older than this many days are deleted in the background.
    pub retention_days: u32,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    slack_webhook_url_env: Option<String>,
    teams_webhook_url_env: Option<String>,
    on: Option<Vec<String>>,
    repeat_after_s: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCircuitBreaker {
    failure_threshold: Option<i64>,
    open_seconds: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    enabled: Option<bool>,
    retention_days: Option<i64>,
}

pub(super) fn alerts(raw: RawAlerts, env: &Env) -> Result<AlertsConfig, ConfigError> {
    let url = |key: &str, var: Option<String>| -> Result<Option<Secret>, ConfigError> {
        let Some(var) = var else { return Ok(None) };
        let Some(secret) = env.secret(key, &var)? else {
            return Ok(None);
        };
        let value = secret.expose();
        if !super::is_http_url(value) {
            return Err(ConfigError::new(
                key,
                format!("environment variable {var} does not hold an http(s) URL"),
            ));
        }
        Ok(Some(secret))
    };
    let mut on = Vec::new();
    match raw.on {
        None => on.extend(AlertKind::ALL),
        Some(names) => {
            for (i, name) in names.iter().enumerate() {
                let kind = AlertKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == name)
                    .ok_or_else(|| {
                        ConfigError::new(
                            format!("alerts.on[{i}]"),
                            format!(
                                "unknown alert {name:?}; known: {}",
                                AlertKind::ALL.map(AlertKind::as_str).join(", ")
                            ),
                        )
                    })?;
                if !on.contains(&kind) {
                    on.push(kind);
                }
            }
        }
    }
    Ok(AlertsConfig {
        slack_webhook_url: url("alerts.slack_webhook_url_env", raw.slack_webhook_url_env)?,
        teams_webhook_url: url("alerts.teams_webhook_url_env", raw.teams_webhook_url_env)?,
        on,
        repeat_after: Duration::from_secs(non_negative(
            raw.repeat_after_s.unwrap_or(900),
            "alerts.repeat_after_s",
            30 * DAY_SECS,
        )? as u64),
    })
}

pub(super) fn circuit_breaker(raw: RawCircuitBreaker) -> Result<CircuitBreakerConfig, ConfigError> {
    Ok(CircuitBreakerConfig {
        failure_threshold: within(
            raw.failure_threshold.unwrap_or(5),
            "circuit_breaker.failure_threshold",
            1_000_000,
        )? as u32,
        open_for: Duration::from_secs(within(
            raw.open_seconds.unwrap_or(60),
            "circuit_breaker.open_seconds",
            DAY_SECS,
        )? as u64),
    })
}

pub(super) fn events(raw: RawEvents) -> Result<EventsConfig, ConfigError> {
    Ok(EventsConfig {
        enabled: raw.enabled.unwrap_or(true),
        retention_days: within(
            raw.retention_days.unwrap_or(30),
            "events.retention_days",
            CENTURY_DAYS,
        )? as u32,
    })
}

fn non_negative(v: i64, key: &str, max: i64) -> Result<i64, ConfigError> {
    if v < 0 {
        Err(ConfigError::new(
            key,
            format!("must not be negative, got {v}"),
        ))
    } else if v > max {
        Err(ConfigError::new(
            key,
            format!("must be at most {max}, got {v}"),
        ))
    } else {
        Ok(v)
    }
}
