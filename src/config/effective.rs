//! The configuration in effect, as `supasaasy config` prints it: the file, the environment's
//! overrides and the defaults, every key with its value, secrets shown only as set or not.

use serde_json::{json, Value};
use supasaasy_connector::Secret;

use super::Config;

/// A secret as printed: never its value.
fn shown(secret: Option<&Secret>) -> Value {
    match secret {
        Some(s) if !s.expose().is_empty() => json!("(set)"),
        _ => Value::Null,
    }
}

impl Config {
    /// Every key in effect; secrets are `"(set)"` or `null`, the database URL its host, port,
    /// database and `sslmode` only.
    pub fn effective(&self) -> Value {
        let d = &self.database;
        let s = &self.server;
        let w = &self.worker;
        json!({
            "database": {
                "url": d.target.to_string(),
                "pool_size": d.pool_size,
                "migrate": d.migrate,
            },
            "server": {
                "listen": s.listen.to_string(),
                "admin_api_keys": s.admin_api_keys.len(),
                "max_body_bytes": s.max_body_bytes,
                "max_connections": s.max_connections,
                "max_connections_per_ip": s.max_connections_per_ip,
                "max_requests_per_connection": s.max_requests_per_connection,
                "connection_max_seconds": s.connection_max_age.as_secs(),
                "webhook_body_budget_bytes": s.webhook_body_budget_bytes,
                "shutdown_grace_seconds": s.shutdown_grace.as_secs(),
                "read_timeout_seconds": s.read_timeout.as_secs(),
            },
            "worker": {
                "concurrency": w.concurrency,
                "poll_interval_ms": w.poll_interval.as_millis() as u64,
                "lease_seconds": w.lease.as_secs(),
                "max_attempts": w.max_attempts,
                "request_timeout_seconds": w.request_timeout.as_secs(),
                "connect_timeout_seconds": w.connect_timeout.as_secs(),
                "retry_base_ms": w.retry_base.as_millis() as u64,
                "job_retention_days": w.job_retention_days,
            },
            "webhook_logging": {
                "enabled": self.webhook_logging.enabled,
                "retention_days": self.webhook_logging.retention_days,
            },
            "apps": self.apps.iter().map(|a| json!({
                "app_key": a.app_key,
                "name": a.name,
                "connector": a.connector.name,
                "api_key": shown(Some(&a.api_key)),
                "webhook_secret": shown(a.webhook_secret.as_ref()),
                "base_url": a.base_url,
                "sync_resources": a.sync_resources,
                "sync_from": a.sync_from.map(|t| t.to_rfc3339()),
                "requests_per_second": a.requests_per_second,
                "trailing_window_hours": a.trailing_window.num_hours(),
                "connect": a.connect.as_ref().map(|c| json!({
                    "enabled": true,
                    "accounts": match &c.accounts {
                        super::ConnectAccounts::All => json!("all"),
                        super::ConnectAccounts::Only(list) => json!(list),
                    },
                    "webhook_secret": shown(c.webhook_secret.as_ref()),
                })),
            })).collect::<Vec<_>>(),
            "sync_schedules": self.sync_schedules.iter().map(|s| json!({
                "app_key": s.app_key,
                "cron": s.cron,
                "timezone": s.schedule.timezone().name(),
                "mode": s.mode.as_str(),
                "enabled": s.enabled,
            })).collect::<Vec<_>>(),
            "alerts": {
                "slack_webhook_url": shown(self.alerts.slack_webhook_url.as_ref()),
                "teams_webhook_url": shown(self.alerts.teams_webhook_url.as_ref()),
                "on": self.alerts.on.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
                "repeat_after_s": self.alerts.repeat_after.as_secs(),
            },
            "circuit_breaker": {
                "failure_threshold": self.circuit_breaker.failure_threshold,
                "open_seconds": self.circuit_breaker.open_for.as_secs(),
            },
            "events": {
                "enabled": self.events.enabled,
                "retention_days": self.events.retention_days,
            },
        })
    }
}
