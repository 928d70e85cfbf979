//! Test doubles for supasaasy: a stateful fake of Stripe's HTTP API ([`fake_stripe`]) and a throwaway
//! Postgres cluster driven as a child process ([`pg`]).
//!
//! The daemon's integration tests, the examples and the benchmark all start real things from here:
//! the fake listens on a real port and speaks Stripe's list protocol, and the cluster is a real
//! `postgres` that disappears with the process that started it.

pub mod fake_stripe;
pub mod pg;
