//! `supasaasy.circuits`: the circuit of each app as the daemons sharing the database last saw it.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use super::StoreError;

/// One app's shared circuit.
#[derive(Debug, Clone)]
pub struct SharedCircuit {
    /// The app.
    pub app_key: String,
    /// `open` or `closed`.
    pub state: String,
    /// When an open circuit's open period ends.
    pub open_until: Option<DateTime<Utc>>,
    /// The error that opened it.
    pub last_error: Option<String>,
    /// When it was written.
    pub updated_at: DateTime<Utc>,
}

/// Writes an app's circuit.
///
/// # Errors
///
/// A database error.
pub async fn write(
    client: &impl GenericClient,
    app_key: &str,
    state: &str,
    open_until: Option<DateTime<Utc>>,
    last_error: Option<&str>,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO supasaasy.circuits (app_key, state, open_until, last_error, updated_at)
             VALUES ($1, $2, $3, $4, clock_timestamp())
             ON CONFLICT (app_key) DO UPDATE SET
                 state = excluded.state, open_until = excluded.open_until,
                 last_error = COALESCE(excluded.last_error, circuits.last_error),
                 updated_at = excluded.updated_at",
            &[&app_key, &state, &open_until, &last_error],
        )
        .await?;
    Ok(())
}

/// Every app's shared circuit.
///
/// # Errors
///
/// A database error.
pub async fn read(client: &impl GenericClient) -> Result<Vec<SharedCircuit>, StoreError> {
    let rows = client
        .query(
            "SELECT app_key, state, open_until, last_error, updated_at FROM supasaasy.circuits",
            &[],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| SharedCircuit {
            app_key: r.get(0),
            state: r.get(1),
            open_until: r.get(2),
            last_error: r.get(3),
            updated_at: r.get(4),
        })
        .collect())
}
