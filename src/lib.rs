//! supasaasy: a daemon that keeps a Postgres mirror of an organisation's SaaS data (Stripe, Intercom)
//! and keeps it right.
//!
//! Data flows one way: a [`config::Config`] becomes a [`context::Context`] (pool and connectors);
//! the [`http`] listener and the [`sync`] entry points enqueue jobs in the [`store`]; the
//! [`worker`] pool claims their tasks and runs each as a [`task`], page by page, through the one
//! write path of [`store::entities`]. [`ops`] tells the people who run it what happened: events log,
//! alerts, circuit breakers, metrics.

pub mod apply;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod connect;
pub mod context;
pub mod daemon;
pub mod db;
pub mod http;
pub mod ops;
pub mod providers;
pub mod scheduler;
pub mod slots;
pub mod store;
pub mod sync;
pub mod task;
pub mod telemetry;
pub mod worker;
