//! The registry of provider connectors: which connector names exist, their resources, and building
//! one connector instance per configured app. Adding a provider touches this file only to register it.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use supasaasy_connector::{AppSettings, Connector, ConnectorError, Resource};

use crate::config::{AppConfig, WorkerConfig};
use crate::ops::metrics::Metrics;

/// The connectors this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorKind {
    /// Stripe, through `supasaasy-stripe`.
    Stripe,
    /// Intercom, through `supasaasy-intercom`.
    Intercom,
}

impl ConnectorKind {
    /// The name used in `connector = "..."`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::Stripe => "stripe",
            ConnectorKind::Intercom => "intercom",
        }
    }
}

impl fmt::Display for ConnectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "stripe" => Ok(ConnectorKind::Stripe),
            "intercom" => Ok(ConnectorKind::Intercom),
            other => Err(format!(
                "unknown connector {other:?} (known: stripe, intercom)"
            )),
        }
    }
}

/// The resources a connector syncs, in the order a full sync runs them.
pub fn resources(kind: ConnectorKind) -> &'static [Resource] {
    match kind {
        ConnectorKind::Stripe => &supasaasy_stripe::RESOURCES,
        ConnectorKind::Intercom => supasaasy_intercom::RESOURCES,
    }
}

/// The provider's public API host.
pub fn default_base_url(kind: ConnectorKind) -> &'static str {
    match kind {
        ConnectorKind::Stripe => "https://api.stripe.com",
        ConnectorKind::Intercom => "https://api.intercom.io",
    }
}

/// The request budget an app gets when `requests_per_second` is not set: Stripe allows 100
/// requests a second to live keys and 25 to test keys; Intercom's budget is read from its
/// rate-limit headers instead, so it gets none here.
pub fn default_requests_per_second(kind: ConnectorKind, api_key: &str) -> Option<f64> {
    match kind {
        ConnectorKind::Stripe if api_key.contains("_live_") => Some(100.0),
        ConnectorKind::Stripe => Some(25.0),
        ConnectorKind::Intercom => None,
    }
}

/// Builds the connector of one app; its requests are counted in `metrics`.
///
/// # Errors
///
/// When the HTTP client cannot be built.
pub fn build(
    app: &AppConfig,
    worker: &WorkerConfig,
    metrics: &Arc<Metrics>,
) -> Result<Arc<dyn Connector>, ConnectorError> {
    let settings = AppSettings {
        request_timeout: worker.request_timeout,
        connect_timeout: worker.connect_timeout,
        requests_per_second: app.requests_per_second,
        ..AppSettings::new(&app.app_key, app.api_key.clone(), &app.base_url)
    }
    .with_observer(metrics.observer(&app.app_key));
    Ok(match app.connector {
        ConnectorKind::Stripe => Arc::new(supasaasy_stripe::StripeConnector::new(settings)?),
        ConnectorKind::Intercom => Arc::new(supasaasy_intercom::IntercomConnector::new(settings)?),
    })
}
