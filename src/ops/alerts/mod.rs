//! Alerts to Slack and Microsoft Teams incoming webhooks.
//!
//! [`Alerter::raise`] never waits: the alert goes through a channel to one background task, which
//! drops kinds not in `alerts.on`, takes the repeat window ([`window`]: the same kind for the same
//! app at most once per `alerts.repeat_after_s`, across every daemon sharing the database through
//! `supasaasy.alert_windows`, or in this daemon's memory while the database does not answer), and
//! spawns the delivery ([`deliver`]), so a slow or failing receiver delays neither other alerts nor
//! any sync or webhook. A window is taken when the alert goes out, whether or not it is delivered,
//! so a failing channel is not hammered. Suppressed alerts are logged at debug level only; with no
//! channel configured an alert is a log line and nothing else.
//!
//! A delivery is retried in the background with exponential backoff and jitter (5 requests over
//! about 8 s, `Retry-After` honoured) on a 5xx, a 429, a timeout (5 s per request) or a connection
//! error; another 4xx is final. Every delivery's end is one integration event: service `slack` or
//! `teams`, `alert.sent` or `alert.failed`, detail `{kind, title, attempts, status, error}`.
//!
//! [`Alerter::webhook_rejected`] counts refused webhooks per app in memory: [`REJECTION_BURST`]
//! (10) within [`REJECTION_WINDOW`] (60 s) raise a `webhook_rejections` alert and start that app's
//! count again (the repeat window dedupes what follows).
//!
//! [`Alerter::send_now`] (`POST /alerts`) sends at once, outside `alerts.on` and the repeat window,
//! with at most two quick retries within 10 s, and answers each channel's result.
//!
//! Webhook URLs carry their token: they stay in a [`Secret`](supasaasy_connector::Secret) and
//! reach no log line, event or error message.

mod deliver;
mod window;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use deadpool_postgres::Pool;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};

pub use window::{REJECTION_BURST, REJECTION_WINDOW};

use self::deliver::{Channel, Retries, Service, BACKGROUND, NOW};
use self::window::{RejectionBursts, RepeatWindow};
use super::event_log::EventLog;
use super::Stopping;
use crate::config::{AlertKind, AlertsConfig};

/// Raised alerts waiting for the background task; beyond it they are dropped with a warning.
const QUEUE: usize = 1_024;
/// Alerts being delivered at once; beyond it a new one is dropped (and recorded as failed).
const MAX_DELIVERIES: usize = 64;
/// The `kind` recorded for an alert sent with `POST /alerts`.
const MANUAL: &str = "manual";

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
    /// A channel was named that is not configured (or does not exist), or none is configured.
    #[error("{0}")]
    Channel(String),
}

/// Alert delivery; cheap to clone.
#[derive(Clone)]
pub struct Alerter {
    /// To the background task.
    tx: mpsc::Sender<Alert>,
    /// What deliveries need, shared with the background task.
    shared: Arc<Shared>,
}

/// What every delivery uses.
struct Shared {
    /// `alerts.on`.
    on: Vec<AlertKind>,
    /// The configured channels, Slack first.
    channels: Vec<Channel>,
    /// `None` when no HTTP client could be built (every delivery then fails, saying so).
    client: Option<reqwest::Client>,
    /// Where delivery ends are recorded.
    events: EventLog,
    /// Refused webhooks per app.
    rejections: Mutex<RejectionBursts>,
    /// Bounds the deliveries in progress.
    deliveries: Arc<Semaphore>,
    /// The process's background tasks: deliveries run under it and end by its deadline.
    stopping: Stopping,
    /// Alerts queued for the sender, and of those, alerts whose fate is settled: held back by
    /// the repeat window, dropped, or delivered (or not) to every channel.
    raised: AtomicU64,
    settled: AtomicU64,
}

impl Alerter {
    /// Starts the background sender. Must be called inside a Tokio runtime; the sender ends when
    /// every handle is dropped (deliveries in progress carry on).
    pub fn start(
        config: AlertsConfig,
        events: EventLog,
        pool: Pool,
        stopping: Stopping,
    ) -> Alerter {
        let channels: Vec<Channel> = Service::ALL
            .into_iter()
            .filter_map(|service| {
                let url = match service {
                    Service::Slack => config.slack_webhook_url.clone(),
                    Service::Teams => config.teams_webhook_url.clone(),
                }?;
                Some(Channel { service, url })
            })
            .collect();
        let client = reqwest::Client::builder()
            .user_agent(concat!("supasaasy/", env!("CARGO_PKG_VERSION")))
            .timeout(deliver::REQUEST_TIMEOUT)
            .connect_timeout(deliver::REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build();
        let client = match client {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::error!(error = %e.without_url(), "cannot build the alerts HTTP client; alerts will fail");
                None
            }
        };
        let shared = Arc::new(Shared {
            on: config.on.clone(),
            channels,
            client,
            events,
            rejections: Mutex::new(RejectionBursts::default()),
            deliveries: Arc::new(Semaphore::new(MAX_DELIVERIES)),
            stopping: stopping.clone(),
            raised: AtomicU64::new(0),
            settled: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let window = RepeatWindow::new(pool, config.repeat_after);
        stopping.spawn(dispatch(shared.clone(), window, rx));
        Alerter { tx, shared }
    }

    /// Raises an alert: sent in the background to every configured channel, unless its kind is
    /// not in `alerts.on` or the same alert for the same app went out within `repeat_after_s`.
    /// Never waits.
    pub fn raise(&self, alert: Alert) {
        if !self.shared.on.contains(&alert.kind) {
            tracing::debug!(app = %alert.app_key, kind = alert.kind.as_str(), "alert not in alerts.on; not sent");
            return;
        }
        if self.shared.channels.is_empty() {
            tracing::warn!(
                app = %alert.app_key,
                kind = alert.kind.as_str(),
                title = %alert.title,
                message = %alert.message,
                "alert (no alert channel is configured)"
            );
            return;
        }
        match self.tx.try_send(alert) {
            Ok(()) => {
                self.shared.raised.fetch_add(1, Ordering::SeqCst);
            }
            Err(mpsc::error::TrySendError::Full(alert)) => {
                tracing::warn!(app = %alert.app_key, kind = alert.kind.as_str(), title = %alert.title, "alert dropped: too many alerts waiting");
            }
            Err(mpsc::error::TrySendError::Closed(alert)) => {
                tracing::debug!(app = %alert.app_key, kind = alert.kind.as_str(), "alert sender stopped; alert dropped");
            }
        }
    }

    /// Alerts queued for sending so far, and how many of them are settled (held back by the
    /// repeat window, dropped, or through with every channel): equal when none is in flight.
    pub fn progress(&self) -> (u64, u64) {
        // Settled first: an alert is raised before it settles, so the pair never shows more
        // settled than raised.
        let settled = self.shared.settled.load(Ordering::SeqCst);
        (self.shared.raised.load(Ordering::SeqCst), settled)
    }

    /// Counts a refused webhook of `app_key`; a burst raises a `webhook_rejections` alert.
    pub fn webhook_rejected(&self, app_key: &str, reason: &str) {
        let burst = {
            let mut rejections = self
                .shared
                .rejections
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            rejections.count(app_key, Instant::now())
        };
        let Some(n) = burst else { return };
        self.raise(Alert {
            kind: AlertKind::WebhookRejections,
            app_key: app_key.to_string(),
            title: format!("supasaasy: webhooks refused for {app_key}"),
            message: format!(
                "{n} webhooks for app {app_key} were refused in the last minute (bad signatures): \
                 someone is sending forged requests, or the webhook secret was rotated without \
                 updating {app_key}'s webhook_secret_env. Last reason: {reason}"
            ),
        });
    }

    /// Sends an alert now to `channels` (every configured one when `None`) and reports each.
    /// Not subject to `alerts.on` or the repeat window; takes at most about 10 s.
    ///
    /// # Errors
    ///
    /// [`SendError::Channel`] when a named channel is unknown or not configured, when `channels`
    /// is empty, or when it is `None` and no channel is configured.
    pub async fn send_now(
        &self,
        title: &str,
        message: &str,
        channels: Option<&[String]>,
    ) -> Result<Vec<ChannelResult>, SendError> {
        let chosen = self.shared.select(channels)?;
        let sends = chosen
            .into_iter()
            .map(|channel| self.shared.send(channel, None, MANUAL, title, message, NOW));
        Ok(futures_util::future::join_all(sends).await)
    }
}

impl Shared {
    /// The channels `POST /alerts` names.
    fn select(&self, names: Option<&[String]>) -> Result<Vec<&Channel>, SendError> {
        let Some(names) = names else {
            if self.channels.is_empty() {
                return Err(SendError::Channel(
                    "no alert channel is configured (set alerts.slack_webhook_url_env or alerts.teams_webhook_url_env)".into(),
                ));
            }
            return Ok(self.channels.iter().collect());
        };
        if names.is_empty() {
            return Err(SendError::Channel(
                "channels is empty: name slack or teams, or leave it out to use every configured channel".into(),
            ));
        }
        let mut chosen: Vec<&Channel> = Vec::new();
        for name in names {
            let service = Service::ALL
                .into_iter()
                .find(|s| s.as_str() == name)
                .ok_or_else(|| {
                    SendError::Channel(format!("unknown channel {name:?}; known: slack, teams"))
                })?;
            let channel = self
                .channels
                .iter()
                .find(|c| c.service == service)
                .ok_or_else(|| {
                    SendError::Channel(format!(
                        "channel {name:?} is not configured (set alerts.{name}_webhook_url_env)"
                    ))
                })?;
            if !chosen.iter().any(|c| c.service == service) {
                chosen.push(channel);
            }
        }
        Ok(chosen)
    }

    /// Sends to every channel, at once, in the background's manner.
    async fn send_all(&self, alert: &Alert) {
        let kind = alert.kind.as_str();
        let sends = self.channels.iter().map(|channel| {
            self.send(
                channel,
                Some(&alert.app_key),
                kind,
                &alert.title,
                &alert.message,
                BACKGROUND,
            )
        });
        futures_util::future::join_all(sends).await;
    }

    /// Delivers to one channel and records how it ended.
    async fn send(
        &self,
        channel: &Channel,
        app_key: Option<&str>,
        kind: &str,
        title: &str,
        message: &str,
        retries: Retries,
    ) -> ChannelResult {
        let service = channel.service.as_str();
        let delivery = match &self.client {
            Some(client) => {
                let payload = channel.service.payload(title, message);
                // A delivery the daemon's stop cuts short is recorded as failed, not lost.
                tokio::select! {
                    delivery = deliver::deliver(client, channel, &payload, retries) => delivery,
                    () = self.stopping.expired() => deliver::Delivery {
                        attempts: 0,
                        status: None,
                        error: Some("the daemon stopped before the alert was delivered".into()),
                    },
                }
            }
            None => deliver::Delivery {
                attempts: 0,
                status: None,
                error: Some("the alerts HTTP client could not be built".into()),
            },
        };
        let mut detail = json!({"kind": kind, "title": title, "attempts": delivery.attempts});
        if let Some(status) = delivery.status {
            detail["status"] = json!(status);
        }
        match &delivery.error {
            None => {
                tracing::info!(
                    service,
                    app = app_key,
                    kind,
                    attempts = delivery.attempts,
                    "alert sent"
                );
                self.events
                    .record(app_key, service, "alert.sent", "sent", detail);
            }
            Some(error) => {
                tracing::warn!(service, app = app_key, kind, attempts = delivery.attempts, %error, "alert not delivered");
                detail["error"] = json!(error);
                self.events
                    .record(app_key, service, "alert.failed", "failed", detail);
            }
        }
        ChannelResult {
            service,
            success: delivery.error.is_none(),
            error: delivery.error,
        }
    }

    /// Records that an alert was dropped before any request, on every channel.
    fn dropped(&self, alert: &Alert, error: &str) {
        tracing::warn!(app = %alert.app_key, kind = alert.kind.as_str(), %error, "alert dropped");
        for channel in &self.channels {
            self.events.record(
                Some(&alert.app_key),
                channel.service.as_str(),
                "alert.failed",
                "failed",
                json!({"kind": alert.kind.as_str(), "title": alert.title, "attempts": 0, "error": error}),
            );
        }
    }
}

/// The background task: one alert at a time through the repeat window, then a delivery task each.
/// When the daemon stops, the alerts already raised are still sent, by the stopping deadline.
async fn dispatch(shared: Arc<Shared>, mut window: RepeatWindow, mut rx: mpsc::Receiver<Alert>) {
    loop {
        let alert = tokio::select! {
            alert = rx.recv() => match alert {
                Some(alert) => alert,
                None => return,
            },
            () = shared.stopping.requested() => break,
        };
        dispatch_one(&shared, &mut window, alert).await;
    }
    while let Ok(alert) = rx.try_recv() {
        dispatch_one(&shared, &mut window, alert).await;
    }
}

async fn dispatch_one(shared: &Arc<Shared>, window: &mut RepeatWindow, alert: Alert) {
    let settled = || shared.settled.fetch_add(1, Ordering::SeqCst);
    if !window.take(alert.kind, &alert.app_key).await {
        tracing::debug!(app = %alert.app_key, kind = alert.kind.as_str(), title = %alert.title, "alert suppressed: sent within the repeat window");
        settled();
        return;
    }
    let Ok(permit) = shared.deliveries.clone().try_acquire_owned() else {
        shared.dropped(
            &alert,
            &format!("dropped: {MAX_DELIVERIES} alerts were already being delivered"),
        );
        settled();
        return;
    };
    let sender = shared.clone();
    shared.stopping.spawn(async move {
        sender.send_all(&alert).await;
        sender.settled.fetch_add(1, Ordering::SeqCst);
        drop(permit);
    });
}
