//! Everything the daemon reads from and writes to Postgres, one module per table family:
//! [`entities`] (the mirror and its single write path) and [`jobs`] (the sync queue). SQL lives
//! here and in `migrations/`, nowhere else.

pub mod accounts;
pub mod alert_windows;
pub mod changes;
pub mod circuits;
pub mod entities;
pub mod events;
pub mod health;
pub mod integration_events;
pub mod job_status;
pub mod jobs;
pub(crate) mod jsonb;
pub mod locks;
pub mod schedules;
pub mod skipped;

use chrono::{DateTime, SecondsFormat, Utc};

/// Why a store call failed, for the callers that branch on it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The task's lease is no longer ours (it expired and another worker took it, or its job was
    /// cancelled): stop working on it and write nothing more.
    #[error("the task's lease was lost")]
    LostLease,
    /// A database error.
    #[error("database error: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool.
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

impl StoreError {
    /// The database refused a value it was given (a data exception, SQLSTATE class 22, or a
    /// value past a limit, class 54): sending it again fails again, while the rest of a batch
    /// without it may well succeed.
    pub fn is_refused_value(&self) -> bool {
        let StoreError::Db(e) = self else {
            return false;
        };
        e.code()
            .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("54"))
    }
}

/// The server's message for a database error ("db error" alone says nothing).
/// A SQL string literal (standard conforming strings: only quotes are doubled), for the
/// connectors' constant collection keys and fields written into a statement so Postgres can use
/// the partial indexes on them.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// Formats a timestamp as RFC 3339 UTC, as every API answer does.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
