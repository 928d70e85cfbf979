//! What the daemon tells the people who run it: the integration events log ([`event_log`]),
//! Slack and Teams alerts ([`alerts`]), a circuit breaker per app ([`breaker`]) and Prometheus
//! metrics ([`metrics`]). One [`Ops`] per process, built with its [`Context`](crate::context::Context).

pub mod alerts;
pub mod breaker;
pub mod event_log;
pub mod metrics;

use std::sync::Arc;

use deadpool_postgres::Pool;

use crate::config::Config;

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
}

impl Ops {
    /// Starts the event writer and the alert sender. Must be called inside a Tokio runtime.
    pub fn start(config: &Config, pool: &Pool) -> Ops {
        let events = event_log::EventLog::start(pool.clone(), config.events.enabled);
        let alerts = alerts::Alerter::start(config.alerts.clone(), events.clone(), pool.clone());
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
        );
        Ops {
            events,
            alerts,
            breakers,
            metrics: Arc::new(metrics::Metrics::new()),
        }
    }
}
