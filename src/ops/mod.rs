//! What the daemon tells the people who run it: the integration events log ([`event_log`]),
//! Slack and Teams alerts ([`alerts`]), a circuit breaker per app ([`breaker`]) and Prometheus
//! metrics ([`metrics`]). One [`Ops`] per process, built with its [`Context`](crate::context::Context).

pub mod alerts;
pub mod breaker;
pub mod clock;
pub mod event_log;
pub mod metrics;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;

/// The background parts of one process (alert deliveries, the webhook lanes, the scheduler), run
/// under one task tracker and stopped together: once the daemon has stopped serving and working,
/// [`Stopping::stop`] tells them, and each finishes what it holds by the deadline (an alert not
/// delivered by then is recorded as failed). Nothing is aborted mid-write.
#[derive(Clone, Default)]
pub struct Stopping {
    token: CancellationToken,
    deadline: Arc<Mutex<Option<Instant>>>,
    tracker: TaskTracker,
}

impl Stopping {
    /// Runs `task` under the tracker.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Completes when the parts are told to stop.
    pub async fn requested(&self) {
        self.token.cancelled().await;
    }

    /// Completes at the deadline, once the parts are told to stop.
    pub async fn expired(&self) {
        self.token.cancelled().await;
        let deadline = *self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(deadline) = deadline {
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Tells every part to stop by `deadline`, and waits for them (a second past it at most).
    pub async fn stop(&self, deadline: Instant) {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
        self.token.cancel();
        self.tracker.close();
        let waited =
            tokio::time::timeout_at(deadline + Duration::from_secs(1), self.tracker.wait()).await;
        if waited.is_err() {
            tracing::warn!(
                tasks = self.tracker.len(),
                "background tasks still running at the end of the grace period"
            );
        }
    }
}

/// The operating parts of one process; cheap to clone.
#[derive(Clone)]
pub struct Ops {
    /// The integration events writer.
    pub events: event_log::EventLog,
    /// Alert delivery.
    pub alerts: alerts::Alerter,
    /// One circuit per app.
    pub breakers: breaker::Breakers,
    /// The Prometheus registry and its series.
    pub metrics: Arc<metrics::Metrics>,
    /// The background parts' tracker and shutdown.
    pub stopping: Stopping,
    /// What "now" is for what is due (open circuits, claimable tasks).
    pub clock: clock::Clock,
}

impl Ops {
    /// Starts the event writer and the alert sender. Must be called inside a Tokio runtime.
    pub fn start(config: &Config, pool: &Pool) -> Ops {
        let stopping = Stopping::default();
        let clock = clock::Clock::default();
        let events = event_log::EventLog::start(pool.clone(), config.events.enabled);
        let alerts = alerts::Alerter::start(
            config.alerts.clone(),
            events.clone(),
            pool.clone(),
            stopping.clone(),
        );
        let apps: Vec<(String, String)> = config
            .apps
            .iter()
            .map(|a| (a.app_key.clone(), a.connector.name.to_string()))
            .collect();
        let breakers = breaker::Breakers::new(
            config.circuit_breaker.clone(),
            &apps,
            events.clone(),
            alerts.clone(),
            pool.clone(),
            clock.clone(),
        );
        Ops {
            events,
            alerts,
            breakers,
            metrics: Arc::new(metrics::Metrics::new()),
            stopping,
            clock,
        }
    }

    /// Stops the background parts by `deadline` ([`Stopping::stop`]), then writes what the
    /// events log still holds (the writer outlives them: it records how they ended).
    pub async fn stop(&self, deadline: Instant) {
        self.stopping.stop(deadline).await;
        self.events.flush(Duration::from_secs(5)).await;
    }
}
