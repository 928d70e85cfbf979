//! Prometheus metrics of one process, served by `GET /metrics` in the OpenMetrics text format.
//!
//! Counters and the job histogram live in one registry for the life of the process and are
//! bumped where things happen (webhooks, sync pages, provider requests, rate-limit waits, job
//! ends). The gauges (queue depth, circuits) are not kept: [`Metrics::render`] builds them from
//! what the caller read at scrape time, so they are never stale. Every series is named
//! `supasaasy_*`; label values are app keys, resources, event types, outcomes, job modes and
//! statuses and HTTP codes, never a secret.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use supasaasy_connector::RequestObserver;

use super::breaker::CircuitState;
use crate::store::health::Freshness;

/// The prefix of every series.
const PREFIX: &str = "supasaasy";
/// Upper bounds of the job duration buckets, in seconds: from a one-second incremental run to a
/// six-hour first sync of a large account.
const JOB_BUCKETS: [f64; 14] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
    21600.0,
];
/// The task statuses `queue_tasks` shows for every configured app, 0 when none is in it.
const QUEUE_STATUSES: [&str; 2] = ["pending", "processing"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    app_key: String,
    event_type: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    app_key: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkippedLabels {
    app_key: String,
    resource: String,
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    app_key: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app_key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    app_key: String,
    mode: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    schema: String,
}

impl BuildLabels {
    fn current() -> BuildLabels {
        BuildLabels {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            schema: crate::db::binary_schema_version().to_string(),
        }
    }
}

/// A time as Unix seconds, with its fraction.
fn unix(at: &chrono::DateTime<chrono::Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

type JobHistograms = Family<JobLabels, Histogram, fn() -> Histogram>;

fn job_histogram() -> Histogram {
    Histogram::new(JOB_BUCKETS)
}

fn app(app_key: &str) -> AppLabels {
    AppLabels {
        app_key: app_key.to_owned(),
    }
}

/// The series of one process; shared behind an `Arc`, every method takes `&self`.
pub struct Metrics {
    /// Holds the families below for encoding; they share their values with it.
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    objects_written: Family<ResourceLabels, Counter>,
    objects_skipped: Family<SkippedLabels, Counter>,
    provider_requests: Family<StatusLabels, Counter>,
    rate_limit_waits: Family<AppLabels, Counter>,
    rate_limit_wait_seconds: Family<AppLabels, Counter<f64, AtomicU64>>,
    job_duration: JobHistograms,
    connections_refused: Family<ReasonLabels, Counter>,
    connections_closed: Family<ReasonLabels, Counter>,
    webhooks_unrecorded: Family<AppLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every counter and histogram, all empty.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let webhooks = Family::default();
        registry.register(
            "webhooks",
            "Webhooks answered, by app, provider event type and outcome (applied, ignored, \
             duplicate, stale, rejected, failed)",
            webhooks.clone(),
        );
        let objects_written = Family::default();
        registry.register(
            "objects_written",
            "Objects written to the mirror by sync pages, by app and resource",
            objects_written.clone(),
        );
        let objects_skipped = Family::default();
        registry.register(
            "objects_skipped",
            "Objects left out of the mirror because the database refused a value of theirs or the \
             provider answered another object (supasaasy.skipped_entities), by app, resource and \
             source (sync, events_api, webhook)",
            objects_skipped.clone(),
        );
        let provider_requests = Family::default();
        registry.register(
            "provider_requests",
            "Requests to a provider, by app and HTTP status (error: no answer)",
            provider_requests.clone(),
        );
        let rate_limit_waits = Family::default();
        registry.register(
            "rate_limit_waits",
            "Times a provider request waited for a rate limit, by app",
            rate_limit_waits.clone(),
        );
        let rate_limit_wait_seconds = Family::default();
        registry.register_with_unit(
            "rate_limit_wait",
            "Time provider requests waited for a rate limit, by app",
            Unit::Seconds,
            rate_limit_wait_seconds.clone(),
        );
        let job_duration = JobHistograms::new_with_constructor(job_histogram);
        registry.register_with_unit(
            "job_duration",
            "Duration of ended sync jobs, by app, mode and final status",
            Unit::Seconds,
            job_duration.clone(),
        );
        let connections_refused = Family::default();
        registry.register(
            "http_connections_refused",
            "Connections refused at once, by reason (per_ip: their client address had \
             server.max_connections_per_ip open)",
            connections_refused.clone(),
        );
        let connections_closed = Family::default();
        registry.register(
            "http_connections_closed",
            "Connections the server closed early, by reason (stalled: the client read none of an \
             answer for server.read_timeout_seconds; max_age: open past \
             server.connection_max_seconds with an answer still unread)",
            connections_closed.clone(),
        );
        let webhooks_unrecorded = Family::default();
        registry.register(
            "webhook_rejections_unrecorded",
            "Webhook requests refused before their signature verified past 100 a minute for an \
             app: counted here and summed up in one integration event a minute, not recorded one \
             by one",
            webhooks_unrecorded.clone(),
        );
        Metrics {
            registry,
            webhooks_unrecorded,
            connections_refused,
            connections_closed,
            webhooks,
            objects_written,
            objects_skipped,
            provider_requests,
            rate_limit_waits,
            rate_limit_wait_seconds,
            job_duration,
        }
    }

    /// A webhook was answered: `outcome` is applied, ignored, duplicate, stale, rejected or
    /// failed.
    pub fn webhook(&self, app_key: &str, event_type: &str, outcome: &str) {
        let labels = WebhookLabels {
            app_key: app_key.to_owned(),
            event_type: event_type.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.webhooks.get_or_create(&labels).inc();
    }

    /// `n` objects of `resource` were written to the mirror by a sync page.
    pub fn objects_written(&self, app_key: &str, resource: &str, n: u64) {
        let labels = ResourceLabels {
            app_key: app_key.to_owned(),
            resource: resource.to_owned(),
        };
        self.objects_written.get_or_create(&labels).inc_by(n);
    }

    /// An object of `resource` was left out of the mirror and recorded in `skipped_entities`;
    /// `source` is sync, events_api or webhook.
    pub fn objects_skipped(&self, app_key: &str, resource: &str, source: &str) {
        let labels = SkippedLabels {
            app_key: app_key.to_owned(),
            resource: resource.to_owned(),
            source: source.to_owned(),
        };
        self.objects_skipped.get_or_create(&labels).inc();
    }

    /// A refused webhook request of `app_key` was counted, not recorded (past the rate).
    pub fn webhook_unrecorded(&self, app_key: &str) {
        self.webhooks_unrecorded.get_or_create(&app(app_key)).inc();
    }

    /// A connection was refused as soon as it was accepted, for `reason`.
    pub fn connection_refused(&self, reason: &str) {
        let labels = ReasonLabels {
            reason: reason.to_owned(),
        };
        self.connections_refused.get_or_create(&labels).inc();
    }

    /// The server closed a connection early, for `reason`.
    pub fn connection_closed(&self, reason: &str) {
        let labels = ReasonLabels {
            reason: reason.to_owned(),
        };
        self.connections_closed.get_or_create(&labels).inc();
    }

    /// A request to `app_key`'s provider got `status` (`None`: no answer, a transport error).
    pub fn provider_request(&self, app_key: &str, status: Option<u16>) {
        let labels = StatusLabels {
            app_key: app_key.to_owned(),
            status: status.map_or_else(|| "error".to_owned(), |s| s.to_string()),
        };
        self.provider_requests.get_or_create(&labels).inc();
    }

    /// A request to `app_key`'s provider waited `waited` for a rate limit.
    pub fn rate_limit_wait(&self, app_key: &str, waited: Duration) {
        let labels = app(app_key);
        self.rate_limit_waits.get_or_create(&labels).inc();
        self.rate_limit_wait_seconds
            .get_or_create(&labels)
            .inc_by(waited.as_secs_f64());
    }

    /// A job ended.
    pub fn job_ended(&self, app_key: &str, mode: &str, status: &str, seconds: f64) {
        let labels = JobLabels {
            app_key: app_key.to_owned(),
            mode: mode.to_owned(),
            status: status.to_owned(),
        };
        self.job_duration.get_or_create(&labels).observe(seconds);
    }

    /// An observer for the connector of `app_key`: its requests' statuses and rate-limit waits
    /// land in this registry.
    pub fn observer(self: &Arc<Self>, app_key: &str) -> Arc<dyn RequestObserver> {
        Arc::new(AppObserver {
            metrics: Arc::clone(self),
            app_key: app_key.to_owned(),
        })
    }

    /// The exposition text, ending with `# EOF`, with the gauges read at scrape time: tasks by
    /// app and status (`queue`; pending and processing read 0 for every app of `circuits` that has
    /// none; `None` while the database does not answer, and the series are left out, since an
    /// unknown depth is not 0), each app's circuit, and the webhook deliveries waiting for a
    /// group-commit lane.
    pub fn render(
        &self,
        queue: Option<&[(String, String, i64)]>,
        circuits: &[(String, CircuitState)],
        (webhooks_queued, events_dropped): (usize, u64),
        freshness: Option<&Freshness>,
    ) -> String {
        let mut scrape = Registry::with_prefix(PREFIX);
        let build = Family::<BuildLabels, Gauge>::default();
        scrape.register(
            "build_info",
            "The running build: its version and the schema version it carries (always 1)",
            build.clone(),
        );
        build.get_or_create(&BuildLabels::current()).set(1);
        let last_success = Family::<ResourceLabels, Gauge<f64, AtomicU64>>::default();
        scrape.register(
            "last_success_timestamp_seconds",
            "When a sync of an app's resource last completed (Unix seconds), from the database",
            last_success.clone(),
        );
        let last_webhook = Family::<AppLabels, Gauge<f64, AtomicU64>>::default();
        scrape.register(
            "last_webhook_timestamp_seconds",
            "When an app last accepted a webhook (Unix seconds), from the database",
            last_webhook.clone(),
        );
        // Left out while the database does not answer, as the queue's depth is.
        if let Some(f) = freshness {
            for (app_key, resource, at) in &f.syncs {
                let labels = ResourceLabels {
                    app_key: app_key.clone(),
                    resource: resource.clone(),
                };
                last_success.get_or_create(&labels).set(unix(at));
            }
            for (app_key, at) in &f.webhooks {
                last_webhook.get_or_create(&app(app_key)).set(unix(at));
            }
        }
        let queued = Gauge::<i64>::default();
        scrape.register(
            "webhooks_queued",
            "Webhook deliveries verified and waiting to be applied in a batch",
            queued.clone(),
        );
        queued.set(i64::try_from(webhooks_queued).unwrap_or(i64::MAX));
        let dropped = Counter::<u64>::default();
        scrape.register(
            "integration_events_dropped",
            "Integration events dropped because the writer was behind (the database down or slow)",
            dropped.clone(),
        );
        dropped.inc_by(events_dropped);
        let queue_tasks = Family::<StatusLabels, Gauge>::default();
        scrape.register(
            "queue_tasks",
            "Sync tasks in the queue, by app and status",
            queue_tasks.clone(),
        );
        let circuit_state = Family::<AppLabels, Gauge>::default();
        scrape.register(
            "circuit_state",
            "Each app's circuit breaker: 0 closed, 1 half open, 2 open",
            circuit_state.clone(),
        );
        let circuit_open = Family::<AppLabels, Gauge>::default();
        scrape.register(
            "circuit_open",
            "1 while an app's circuit is not closed (requests held or probing), else 0",
            circuit_open.clone(),
        );
        // No queue series at all while the database does not answer: an unknown depth is not 0.
        let known = queue.is_some();
        for (app_key, _) in circuits.iter().filter(|_| known) {
            for status in QUEUE_STATUSES {
                let labels = StatusLabels {
                    app_key: app_key.clone(),
                    status: status.to_owned(),
                };
                queue_tasks.get_or_create(&labels).set(0);
            }
        }
        for (app_key, status, count) in queue.unwrap_or_default() {
            let labels = StatusLabels {
                app_key: app_key.clone(),
                status: status.clone(),
            };
            queue_tasks.get_or_create(&labels).set(*count);
        }
        for (app_key, state) in circuits {
            let labels = app(app_key);
            let (value, open) = match state {
                CircuitState::Closed => (0, 0),
                CircuitState::HalfOpen => (1, 1),
                CircuitState::Open => (2, 1),
            };
            circuit_state.get_or_create(&labels).set(value);
            circuit_open.get_or_create(&labels).set(open);
        }
        let mut text = String::new();
        // Writing to a String cannot fail; the encoders only pass the writer's errors on.
        let _ = encode_registry(&mut text, &self.registry)
            .and_then(|()| encode_registry(&mut text, &scrape))
            .and_then(|()| encode_eof(&mut text));
        text
    }
}

/// Forwards one app's connector requests to the metrics.
struct AppObserver {
    metrics: Arc<Metrics>,
    app_key: String,
}

impl RequestObserver for AppObserver {
    fn answered(&self, status: Option<u16>, _elapsed: Duration) {
        self.metrics.provider_request(&self.app_key, status);
    }

    fn rate_limited(&self, waited: Duration) {
        self.metrics.rate_limit_wait(&self.app_key, waited);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
    }

    #[test]
    fn every_series_is_named_and_the_text_ends_with_eof() {
        let metrics = Arc::new(Metrics::new());
        metrics.webhook("stripe_prod", "customer.updated", "applied");
        metrics.webhook("stripe_prod", "customer.updated", "applied");
        metrics.objects_written("stripe_prod", "customer", 150);
        metrics
            .observer("stripe_prod")
            .answered(Some(200), Duration::ZERO);
        metrics
            .observer("stripe_prod")
            .answered(None, Duration::ZERO);
        metrics
            .observer("stripe_prod")
            .rate_limited(Duration::from_millis(1500));
        metrics.job_ended("stripe_prod", "full", "completed", 42.0);
        let text = metrics.render(
            Some(&[("stripe_prod".into(), "pending".into(), 3)]),
            &[
                ("stripe_prod".into(), CircuitState::Closed),
                ("intercom_eu".into(), CircuitState::Open),
            ],
            (5, 7),
            Some(&Freshness {
                syncs: vec![(
                    "stripe_prod".into(),
                    "customer".into(),
                    chrono::DateTime::from_timestamp(1_700_000_000, 500_000_000).unwrap(),
                )],
                webhooks: vec![(
                    "stripe_prod".into(),
                    chrono::DateTime::from_timestamp(1_700_000_100, 0).unwrap(),
                )],
            }),
        );
        for (series, value) in [
            (
                r#"supasaasy_webhooks_total{app_key="stripe_prod",event_type="customer.updated",outcome="applied"}"#,
                "2",
            ),
            (
                r#"supasaasy_objects_written_total{app_key="stripe_prod",resource="customer"}"#,
                "150",
            ),
            (
                r#"supasaasy_provider_requests_total{app_key="stripe_prod",status="200"}"#,
                "1",
            ),
            (
                r#"supasaasy_provider_requests_total{app_key="stripe_prod",status="error"}"#,
                "1",
            ),
            (
                r#"supasaasy_rate_limit_waits_total{app_key="stripe_prod"}"#,
                "1",
            ),
            (
                r#"supasaasy_rate_limit_wait_seconds_total{app_key="stripe_prod"}"#,
                "1.5",
            ),
            (
                r#"supasaasy_job_duration_seconds_count{app_key="stripe_prod",mode="full",status="completed"}"#,
                "1",
            ),
            (
                r#"supasaasy_job_duration_seconds_bucket{le="60.0",app_key="stripe_prod",mode="full",status="completed"}"#,
                "1",
            ),
            (
                r#"supasaasy_queue_tasks{app_key="stripe_prod",status="pending"}"#,
                "3",
            ),
            (
                r#"supasaasy_queue_tasks{app_key="stripe_prod",status="processing"}"#,
                "0",
            ),
            (
                r#"supasaasy_queue_tasks{app_key="intercom_eu",status="pending"}"#,
                "0",
            ),
            (r#"supasaasy_circuit_state{app_key="stripe_prod"}"#, "0"),
            (r#"supasaasy_circuit_state{app_key="intercom_eu"}"#, "2"),
            (r#"supasaasy_circuit_open{app_key="intercom_eu"}"#, "1"),
            ("supasaasy_webhooks_queued", "5"),
            ("supasaasy_integration_events_dropped_total", "7"),
            (
                r#"supasaasy_last_success_timestamp_seconds{app_key="stripe_prod",resource="customer"}"#,
                "1700000000.5",
            ),
            (
                r#"supasaasy_last_webhook_timestamp_seconds{app_key="stripe_prod"}"#,
                "1700000100.0",
            ),
        ] {
            let found = line(&text, series).unwrap_or_else(|| panic!("{series} in:\n{text}"));
            assert_eq!(&found[series.len() + 1..], value, "{found}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1);
        let build = format!(
            "supasaasy_build_info{{version=\"{}\",schema=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            crate::db::binary_schema_version()
        );
        assert!(text.contains(&build), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.webhook("unknown", "a\"b\\c\nd", "rejected");
        let text = metrics.render(None, &[], (0, 0), None);
        assert!(
            text.contains(r#"event_type="a\"b\\c\nd""#),
            "the line stays one line: {text}"
        );
    }
}
