//! Integration tests: the daemon against a real Postgres and a fake Stripe speaking Stripe's HTTP
//! protocol. One binary, so the throwaway Postgres starts once.

mod alerts;
mod api;
mod bad_input;
mod billing;
mod binary;
mod connect;
mod connections;
mod crash;
mod faults;
mod group_commit;
mod helpers;
mod incremental;
mod intercom;
mod metrics;
mod openapi;
mod openapi_check;
mod operating;
mod outage;
mod poison;
mod process;
mod queue;
mod ranges;
mod schedules;
mod stripe_ids;
mod sync;
mod tls;
mod upgrades;
mod views;
mod webhook_intake;
mod webhooks;
