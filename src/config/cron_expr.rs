//! Cron expressions of `[[sync_schedules]]`: standard 5-field cron, or 6 fields with seconds first,
//! turned into the `cron` crate's schedules.

use std::str::FromStr;

/// Parses a standard 5-field cron expression, or a 6-field one with seconds first. Days of the
/// week are numbered as in standard cron (0 and 7 are Sunday), not as the `cron` crate numbers
/// them (1 is Sunday).
pub(super) fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let mut fields: Vec<String> = expr.split_whitespace().map(str::to_string).collect();
    match fields.len() {
        5 => fields.insert(0, "0".into()),
        6 => {}
        _ => return Err(format!("{expr:?} must have 5 fields (or 6 with seconds)")),
    }
    fields[5] =
        standard_days_of_week(&fields[5]).map_err(|e| format!("{expr:?}: day of week {e}"))?;
    cron::Schedule::from_str(&fields.join(" ")).map_err(|e| {
        format!(
            "{expr:?} is not a cron expression: {}",
            e.to_string().replace('\n', " ")
        )
    })
}

/// Rewrites a numeric day-of-week field (0-7, Sunday 0 or 7; lists, ranges, steps) as the `cron`
/// crate's numbering (1-7, Sunday 1). Names (`MON-FRI`) and `*` pass through.
fn standard_days_of_week(field: &str) -> Result<String, String> {
    if field == "*" || field == "?" || field.chars().any(|c| c.is_ascii_alphabetic()) {
        return Ok(field.to_string());
    }
    let number = |s: &str| -> Result<u32, String> {
        s.parse::<u32>()
            .ok()
            .filter(|n| *n <= 7)
            .ok_or_else(|| format!("{s:?} is not 0-7"))
    };
    let mut days = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                number(s)
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or(format!("bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let (from, to) = match range {
            "*" => (0, 6),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if step > 1 => (number(r)?, 7),
                None => (number(r)?, number(r)?),
            },
        };
        if from > to {
            return Err(format!("range {range:?} runs backwards"));
        }
        for d in (from..=to).step_by(step as usize) {
            days[(d % 7) as usize] = true;
        }
    }
    let list: Vec<String> = (0..7)
        .filter(|d| days[*d])
        .map(|d| (d + 1).to_string())
        .collect();
    Ok(list.join(","))
}
