//! Alerts to Slack and Microsoft Teams incoming webhooks.
//!
//! (Skeleton: the API the rest of the daemon calls. Delivery is filled in separately.)

use deadpool_postgres::Pool;

use super::event_log::EventLog;
use crate::config::{AlertKind, AlertsConfig};

/// One alert raised by the daemon.
#[derive(Debug, Clone)]
pub struct Alert {
    /// What raised it; `alerts.on` filters on it, and the repeat window is per kind and app.
    pub kind: AlertKind,
    /// The app it concerns.
    pub app_key: String,
    /// A one-line title.
    pub title: String,
    /// What happened and what to do, without secrets.
    pub message: String,
}

/// The result of sending to one channel.
#[derive(Debug, Clone)]
pub struct ChannelResult {
    /// `slack` or `teams`.
    pub service: &'static str,
    /// Whether the channel accepted it.
    pub success: bool,
    /// Why not, without the URL.
    pub error: Option<String>,
}

/// Why `POST /alerts` cannot send.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A channel was named that is not configured (or does not exist).
    #[error("{0}")]
    Channel(String),
}

/// Alert delivery; cheap to clone.
#[derive(Clone)]
pub struct Alerter {
    config: AlertsConfig,
    #[allow(dead_code)]
    events: EventLog,
    #[allow(dead_code)]
    pool: Pool,
}

impl Alerter {
    /// Starts the background sender. Must be called inside a Tokio runtime.
    pub fn start(config: AlertsConfig, events: EventLog, pool: Pool) -> Alerter {
        Alerter {
            config,
            events,
            pool,
        }
    }

    /// Raises an alert: sent in the background to every configured channel, unless its kind is
    /// not in `alerts.on` or the same alert for the same app went out within `repeat_after_s`.
    /// Never waits.
    pub fn raise(&self, alert: Alert) {
        if !self.config.on.contains(&alert.kind) {
            return;
        }
        tracing::warn!(app = %alert.app_key, kind = alert.kind.as_str(), title = %alert.title, "alert");
    }

    /// Counts a refused webhook of `app_key`; a burst raises a `webhook_rejections` alert.
    pub fn webhook_rejected(&self, app_key: &str, reason: &str) {
        let _ = (app_key, reason);
    }

    /// Sends an alert now to `channels` (every configured one when `None`) and reports each.
    ///
    /// # Errors
    ///
    /// [`SendError::Channel`] when a named channel is unknown or not configured.
    pub async fn send_now(
        &self,
        title: &str,
        message: &str,
        channels: Option<&[String]>,
    ) -> Result<Vec<ChannelResult>, SendError> {
        let _ = (title, message, channels);
        Ok(Vec::new())
    }
}
