//! Test doubles for supasaasy: stateful fakes of Stripe's and Intercom's HTTP APIs ([`fake_stripe`],
//! [`fake_intercom`]), a fake Slack / Teams webhook receiver ([`fake_alerts`]) and a throwaway
//! Postgres cluster driven as a child process ([`pg`]), with certificates for one that speaks TLS
//! ([`certs`]).
//!
//! The daemon's integration tests, the examples and the benchmark all start real things from here:
//! the fakes listen on real ports and speak the providers' list protocols, and the cluster is a real
//! `postgres` that disappears with the process that started it.

pub mod certs;
pub mod fake_alerts;
pub mod fake_intercom;
pub mod fake_stripe;
mod http_server;
pub mod pg;
mod rewrite;
