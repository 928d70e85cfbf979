//! Cron expressions of `[[sync_schedules]]`, read as operators read them: standard 5-field cron
//! (or 6 fields, seconds first), days of the week 0-7 with Sunday 0 or 7, and Vixie cron's rule
//! that when both the day of the month and the day of the week are restricted, either matching
//! fires; evaluated in the schedule's time zone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// When a schedule fires: its expression, in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The parsed expression.
    cron: Cron,
    /// Where its times are read (UTC unless the schedule names one).
    timezone: Tz,
}

impl Schedule {
    /// The first firing strictly after `at`.
    pub fn next_after(&self, at: &DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.timezone);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The time zone its times are read in.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }
}

/// Parses a standard 5-field cron expression, or a 6-field one with seconds first, to be read in
/// `timezone` (an IANA name; `None` is UTC).
pub(super) fn parse_schedule(expr: &str, timezone: Option<&str>) -> Result<Schedule, String> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!("{expr:?} must have 5 fields (or 6 with seconds)"));
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    let cron = parser
        .parse(expr)
        .map_err(|e| format!("{expr:?} is not a cron expression: {e}"))?;
    Ok(Schedule {
        cron,
        timezone: parse_timezone(timezone)?,
    })
}

/// An IANA time zone name (`Europe/Paris`), UTC when none.
fn parse_timezone(name: Option<&str>) -> Result<Tz, String> {
    match name {
        None => Ok(Tz::UTC),
        Some(name) => name
            .parse()
            .map_err(|_| format!("timezone {name:?} is not an IANA time zone name")),
    }
}
