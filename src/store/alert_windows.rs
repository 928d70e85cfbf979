//! `supasaasy.alert_windows`: when each alert was last sent for each app, so the daemons sharing
//! the database send the same alert for the same app at most once per repeat window.

use std::time::Duration;

use tokio_postgres::GenericClient;

use super::StoreError;

/// Takes the repeat window of `alert_key` for `app_key`: true when no daemon sent this alert for
/// this app within `repeat_after` (the window is then ours and starts now), false when one did.
///
/// One statement, so two daemons raising the same alert at once cannot both win.
///
/// # Errors
///
/// A database error; nothing was written then.
pub async fn claim(
    client: &impl GenericClient,
    alert_key: &str,
    app_key: &str,
    repeat_after: Duration,
) -> Result<bool, StoreError> {
    let row = client
        .query_opt(
            "INSERT INTO supasaasy.alert_windows (alert_key, app_key, last_sent_at)
             VALUES ($1, $2, now())
             ON CONFLICT (alert_key, app_key) DO UPDATE SET last_sent_at = now()
             WHERE alert_windows.last_sent_at <= now() - make_interval(secs => $3)
             RETURNING last_sent_at",
            &[&alert_key, &app_key, &repeat_after.as_secs_f64()],
        )
        .await?;
    Ok(row.is_some())
}
