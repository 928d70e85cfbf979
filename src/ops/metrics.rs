//! Prometheus metrics of one process, served by `GET /metrics`.
//!
//! (Skeleton: the API the rest of the daemon calls. The registry is filled in separately.)

use std::time::Duration;

use super::breaker::CircuitState;

/// The series of one process.
#[derive(Default)]
pub struct Metrics {}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Metrics {
        Metrics {}
    }

    /// A webhook was answered: `outcome` is applied, ignored, duplicate, stale, rejected or
    /// error.
    pub fn webhook(&self, app_key: &str, event_type: &str, outcome: &str) {
        let _ = (app_key, event_type, outcome);
    }

    /// `n` objects of `resource` were written to the mirror by a sync page.
    pub fn objects_written(&self, app_key: &str, resource: &str, n: u64) {
        let _ = (app_key, resource, n);
    }

    /// A request to `app_key`'s provider got `status` (`None`: no answer, a transport error).
    pub fn provider_request(&self, app_key: &str, status: Option<u16>) {
        let _ = (app_key, status);
    }

    /// A request to `app_key`'s provider waited `waited` for a rate limit.
    pub fn rate_limit_wait(&self, app_key: &str, waited: Duration) {
        let _ = (app_key, waited);
    }

    /// A job ended.
    pub fn job_ended(&self, app_key: &str, mode: &str, status: &str, seconds: f64) {
        let _ = (app_key, mode, status, seconds);
    }

    /// The exposition text, with the gauges read at scrape time: tasks by app and status, and
    /// each app's circuit.
    pub fn render(
        &self,
        queue: &[(String, String, i64)],
        circuits: &[(String, CircuitState)],
    ) -> String {
        let _ = (queue, circuits);
        String::new()
    }
}
