//! A circuit breaker per app, around every sync request to its provider.
//!
//! Closed, it counts consecutive failed requests (after their in-place retries; 5xx, timeouts,
//! transport errors, a rejected key). At `failure_threshold` it opens: the app's tasks are not
//! claimed and a running task puts itself back without spending an attempt, an integration event
//! and an alert are written. After `open_seconds` the next request is a probe (half-open): success
//! closes the circuit, failure opens it again. Webhooks are not gated: they are still received and
//! applied.
//!
//! The state is per process. So that daemons sharing a database do not disagree for long, a
//! daemon that opens or closes a circuit writes it to `supasaasy.circuits`, and every daemon reads
//! that table every [`SHARE_EVERY`]: an open circuit found there is adopted until its `open_until`,
//! and a close found there newer than the local opening closes the local circuit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::json;

use super::alerts::{Alert, Alerter};
use super::clock::Clock;
use super::event_log::EventLog;
use crate::config::{AlertKind, CircuitBreakerConfig};

/// How often a daemon reads the circuits the others wrote.
pub const SHARE_EVERY: Duration = Duration::from_secs(5);

/// A circuit's state, as `/health` and `/metrics` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests flow.
    Closed,
    /// Requests wait until the open period ends.
    Open,
    /// One probe request decides.
    HalfOpen,
}

impl CircuitState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        since: DateTime<Utc>,
    },
    HalfOpen {
        probe_since: Instant,
    },
}

impl State {
    /// How long a request must wait: while open, or while a probe is in flight (a probe that
    /// never reported, its task stopped mid-request, is replaced after an open period).
    fn wait(&self, now: Instant, open_for: Duration) -> Option<Duration> {
        match *self {
            State::Open { until, .. } if now < until => Some(until - now),
            State::HalfOpen { probe_since } if now.duration_since(probe_since) < open_for => {
                Some(Duration::from_secs(1))
            }
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Circuit {
    state: State,
    /// The error that last counted against the circuit.
    last_error: Option<String>,
}

/// The breakers of every app of this process; cheap to clone.
#[derive(Clone)]
pub struct Breakers {
    config: CircuitBreakerConfig,
    circuits: Arc<HashMap<String, Mutex<Circuit>>>,
    /// The service name of each app's connector, for events.
    services: Arc<HashMap<String, String>>,
    events: EventLog,
    alerts: Alerter,
    pool: Pool,
    /// What "now" is for open periods.
    clock: Clock,
}

/// What a transition asks of the outside world.
enum Transition {
    Opened { error: String, until: DateTime<Utc> },
    Closed,
}

impl Breakers {
    /// A closed breaker for each `(app_key, connector name)`.
    pub fn new(
        config: CircuitBreakerConfig,
        apps: &[(String, String)],
        events: EventLog,
        alerts: Alerter,
        pool: Pool,
        clock: Clock,
    ) -> Breakers {
        let circuits = apps
            .iter()
            .map(|(app, _)| {
                let circuit = Circuit {
                    state: State::Closed { failures: 0 },
                    last_error: None,
                };
                (app.clone(), Mutex::new(circuit))
            })
            .collect();
        Breakers {
            config,
            circuits: Arc::new(circuits),
            services: Arc::new(apps.iter().cloned().collect()),
            events,
            alerts,
            pool,
            clock,
        }
    }

    fn with<T>(&self, app_key: &str, f: impl FnOnce(&mut Circuit) -> T) -> Option<T> {
        let circuit = self.circuits.get(app_key)?;
        let mut guard = circuit.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut guard))
    }

    /// May a request to `app_key`'s provider go now? `Ok(true)` when it is the probe of a
    /// half-open circuit (its result decides at once: no retry in place), `Err(wait)` when the
    /// circuit is open or its probe is in flight: try again after `wait`.
    ///
    /// # Errors
    ///
    /// The time to wait when the circuit does not let the request through.
    pub fn check(&self, app_key: &str) -> Result<bool, Duration> {
        let open_for = self.config.open_for;
        self.with(app_key, |c| {
            let now = self.clock.instant();
            if let Some(wait) = c.state.wait(now, open_for) {
                return Err(wait);
            }
            if let State::Closed { .. } = c.state {
                return Ok(false);
            }
            c.state = State::HalfOpen { probe_since: now };
            Ok(true)
        })
        .unwrap_or(Ok(false))
    }

    /// A request to `app_key`'s provider succeeded (or failed in a way that says nothing about
    /// the provider's health: a rate limit, one bad request).
    pub fn success(&self, app_key: &str) {
        let transition = self.with(app_key, |c| match c.state {
            State::Closed { failures: 0 } => None,
            State::Closed { .. } => {
                c.state = State::Closed { failures: 0 };
                None
            }
            State::HalfOpen { .. } | State::Open { .. } => {
                c.state = State::Closed { failures: 0 };
                Some(Transition::Closed)
            }
        });
        if let Some(Some(t)) = transition {
            self.announce(app_key, t);
        }
    }

    /// A request to `app_key`'s provider failed after its retries: `error` says how.
    pub fn failure(&self, app_key: &str, error: &str) {
        let threshold = self.config.failure_threshold;
        let open_for = self.config.open_for;
        let transition = self.with(app_key, |c| {
            c.last_error = Some(error.to_string());
            let open = |c: &mut Circuit| {
                let until = self.clock.now() + open_for;
                c.state = State::Open {
                    until: self.clock.instant() + open_for,
                    since: Utc::now(),
                };
                Some(Transition::Opened {
                    error: error.to_string(),
                    until,
                })
            };
            match c.state {
                State::Closed { failures } if failures + 1 >= threshold => open(c),
                State::Closed { failures } => {
                    c.state = State::Closed {
                        failures: failures + 1,
                    };
                    None
                }
                State::HalfOpen { .. } => open(c),
                // Another request that was already in flight when the circuit opened.
                State::Open { .. } => None,
            }
        });
        if let Some(Some(t)) = transition {
            self.announce(app_key, t);
        }
    }

    /// The state of `app_key`'s circuit.
    pub fn state(&self, app_key: &str) -> CircuitState {
        self.with(app_key, |c| match c.state {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until, .. } if self.clock.instant() < until => CircuitState::Open,
            State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
        })
        .unwrap_or(CircuitState::Closed)
    }

    /// The error that last counted against `app_key`'s circuit.
    pub fn last_error(&self, app_key: &str) -> Option<String> {
        self.with(app_key, |c| c.last_error.clone()).flatten()
    }

    /// Whether `app_key`'s tasks should not be claimed now: its circuit is open, or its probe is
    /// in flight.
    pub fn is_blocked(&self, app_key: &str) -> bool {
        let open_for = self.config.open_for;
        self.with(app_key, |c| {
            c.state.wait(self.clock.instant(), open_for).is_some()
        })
        .unwrap_or(false)
    }

    fn announce(&self, app_key: &str, transition: Transition) {
        let service = self
            .services
            .get(app_key)
            .cloned()
            .unwrap_or_else(|| "supasaasy".into());
        match transition {
            Transition::Opened { error, until } => {
                tracing::warn!(app = app_key, %error, open_until = %until, "circuit opened: the provider keeps failing; its tasks wait");
                self.events.record(
                    Some(app_key),
                    &service,
                    "circuit.opened",
                    "opened",
                    json!({
                        "error": error,
                        "failure_threshold": self.config.failure_threshold,
                        "open_until": crate::store::rfc3339(until),
                    }),
                );
                self.alerts.raise(Alert {
                    kind: AlertKind::CircuitOpen,
                    app_key: app_key.to_string(),
                    title: format!("supasaasy: circuit open for {app_key}"),
                    message: format!(
                        "{service} keeps failing for app {app_key}: {error}. Its syncs wait {}s, then one probe request decides. Webhooks are still applied.",
                        self.config.open_for.as_secs()
                    ),
                });
                self.share(app_key, "open", Some(until), Some(error));
            }
            Transition::Closed => {
                tracing::info!(app = app_key, "circuit closed: the provider answers again");
                self.events.record(
                    Some(app_key),
                    &service,
                    "circuit.closed",
                    "closed",
                    json!({}),
                );
                self.share(app_key, "closed", None, None);
            }
        }
    }

    /// Writes a transition for the other daemons, in the background.
    fn share(
        &self,
        app_key: &str,
        state: &'static str,
        until: Option<DateTime<Utc>>,
        error: Option<String>,
    ) {
        let (pool, app_key) = (self.pool.clone(), app_key.to_string());
        tokio::spawn(async move {
            let result = async {
                let client = pool.get().await?;
                crate::store::circuits::write(&**client, &app_key, state, until, error.as_deref())
                    .await
            }
            .await;
            if let Err(e) = result {
                tracing::debug!(error = %e, "circuit state not shared");
            }
        });
    }

    /// Adopts what the other daemons wrote: an open circuit until its end, or a close newer than
    /// our own opening.
    pub async fn adopt_shared(&self) -> Result<(), crate::store::StoreError> {
        let client = self.pool.get().await?;
        let rows = crate::store::circuits::read(&**client).await?;
        for row in rows {
            self.with(&row.app_key, |c| match (&c.state, row.open_until) {
                (State::Closed { .. }, Some(until))
                    if row.state == "open" && until > self.clock.now() =>
                {
                    let left = (until - self.clock.now()).to_std().unwrap_or_default();
                    c.state = State::Open {
                        until: self.clock.instant() + left,
                        since: row.updated_at,
                    };
                    c.last_error = row.last_error.clone();
                }
                (State::Open { since, .. }, _)
                    if row.state == "closed" && row.updated_at > *since =>
                {
                    c.state = State::Closed { failures: 0 };
                }
                _ => {}
            });
        }
        Ok(())
    }
}
