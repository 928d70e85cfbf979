//! The connector against the fake Intercom of `supasaasy-testkit`: whole walks of every resource,
//! fetches, the company scroll's faults, search windows, rate limits and webhook deliveries.

mod listing;
mod rate_limits;
mod scroll;
mod search;
mod support;
mod webhooks;
