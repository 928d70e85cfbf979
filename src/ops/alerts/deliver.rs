//! One alert to one channel: the payload the service expects, a POST with a short timeout, and
//! retries with exponential backoff and jitter (honouring `Retry-After`) while the failure is one
//! that may pass: a 5xx, a 429, a timeout or a connection error. Any other 4xx is final.
//!
//! The channel's URL is the credential (the token is in its path), so no message built here holds
//! it: reqwest errors are described without their URL, and whatever a receiver answers is scrubbed
//! of the URL before it is quoted.

use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;
use serde_json::{json, Value};
use supasaasy_connector::answer::read_capped;
use supasaasy_connector::Secret;
use tokio::time::Instant;

/// How long one request may take, connection included.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a receiver's answer quoted in an error.
const QUOTE_CHARS: usize = 120;
/// The most of a refusing answer read to quote from (its first 120 characters are kept).
const MAX_ALERT_ANSWER: usize = 64 << 10;

/// An alert service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Service {
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams incoming webhook or Workflows "when a webhook request is received" URL.
    Teams,
}

impl Service {
    /// Both, in the order results are given.
    pub(super) const ALL: [Service; 2] = [Service::Slack, Service::Teams];

    /// The name in `POST /alerts` and in the events log.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Service::Slack => "slack",
            Service::Teams => "teams",
        }
    }

    /// The body this service's webhooks accept.
    pub(super) fn payload(self, title: &str, message: &str) -> Value {
        match self {
            Service::Slack => json!({
                "text": format!("*{}*\n{}", slack_escape(title), slack_escape(message)),
            }),
            // Teams Workflows accept only Adaptive Cards; the older incoming webhooks accept them
            // too, wrapped in a message the same way.
            Service::Teams => json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Large", "wrap": true},
                            {"type": "TextBlock", "text": message, "wrap": true},
                        ],
                    },
                }],
            }),
        }
    }
}

/// Slack reads `&`, `<` and `>` as markup; anything else in our text is shown as written.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A configured channel.
#[derive(Clone)]
pub(super) struct Channel {
    /// Which service.
    pub service: Service,
    /// Its webhook URL, a credential.
    pub url: Secret,
}

/// How hard one delivery tries.
#[derive(Debug, Clone, Copy)]
pub(super) struct Retries {
    /// Requests at most, the first included.
    pub attempts: u32,
    /// The wait before the first retry, doubled for each next one (plus up to half again of
    /// jitter).
    pub first_delay: Duration,
    /// The longest wait honoured (a `Retry-After` beyond it is cut to it).
    pub max_delay: Duration,
    /// When set, the whole delivery ends within this time: no retry starts that could not.
    pub budget: Option<Duration>,
}

/// Raised alerts, in the background: 5 requests over about 8 s (0.5, 1, 2, 4 s between them).
pub(super) const BACKGROUND: Retries = Retries {
    attempts: 5,
    first_delay: Duration::from_millis(500),
    max_delay: Duration::from_secs(60),
    budget: None,
};

/// `POST /alerts`, which someone is waiting on: 3 requests within 10 s.
pub(super) const NOW: Retries = Retries {
    attempts: 3,
    first_delay: Duration::from_millis(250),
    max_delay: Duration::from_secs(10),
    budget: Some(Duration::from_secs(10)),
};

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Delivery {
    /// Requests made.
    pub attempts: u32,
    /// The last HTTP status received, if any.
    pub status: Option<u16>,
    /// Why it was not delivered; `None` when it was. Never holds the URL.
    pub error: Option<String>,
}

/// Why one request did not deliver.
struct Failure {
    error: String,
    status: Option<u16>,
    /// Worth another try.
    retry: bool,
    /// The receiver's `Retry-After`.
    retry_after: Option<Duration>,
}

/// Delivers `payload` to `channel`, retrying as `retries` allows.
pub(super) async fn deliver(
    client: &reqwest::Client,
    channel: &Channel,
    payload: &Value,
    retries: Retries,
) -> Delivery {
    let deadline = retries.budget.map(|b| Instant::now() + b);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let timeout = match deadline {
            Some(d) => REQUEST_TIMEOUT.min(d.saturating_duration_since(Instant::now())),
            None => REQUEST_TIMEOUT,
        };
        let failure = match post(client, channel, payload, timeout).await {
            Ok(status) => {
                return Delivery {
                    attempts: attempt,
                    status: Some(status),
                    error: None,
                }
            }
            Err(f) => f,
        };
        let delay = delay(retries, attempt, failure.retry_after);
        let out_of_time = deadline.is_some_and(|d| Instant::now() + delay >= d);
        if !failure.retry || attempt >= retries.attempts || out_of_time {
            return Delivery {
                attempts: attempt,
                status: failure.status,
                error: Some(failure.error),
            };
        }
        tracing::debug!(
            service = channel.service.as_str(),
            attempt,
            error = %failure.error,
            ?delay,
            "alert not delivered yet; retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

/// The wait after failed attempt number `attempt` (1-based).
fn delay(retries: Retries, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let base = retries
        .first_delay
        .saturating_mul(2u32.saturating_pow(attempt - 1));
    let wait = match retry_after {
        Some(after) => after.max(base),
        None => base + crate::backoff::jitter(base / 2),
    };
    wait.min(retries.max_delay)
}

/// One request: the status of a 2xx answer, or why not.
async fn post(
    client: &reqwest::Client,
    channel: &Channel,
    payload: &Value,
    timeout: Duration,
) -> Result<u16, Failure> {
    let url = channel.url.expose();
    let response = client
        .post(url)
        .timeout(timeout)
        .json(payload)
        .send()
        .await
        .map_err(|e| transport_failure(e, url))?;
    let status = response.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    // The answer's text says why (Slack: `no_service`, `invalid_payload`); a body that cannot be
    // read in time is left out.
    let body = read_capped(response, MAX_ALERT_ANSWER)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let quoted = quote(&body, url);
    let mut error = format!("answered {}", status.as_u16());
    if !quoted.is_empty() {
        error.push_str(": ");
        error.push_str(&quoted);
    }
    Err(Failure {
        error,
        status: Some(status.as_u16()),
        retry: status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error(),
        retry_after,
    })
}

/// A transport error, described without the URL.
fn transport_failure(e: reqwest::Error, url: &str) -> Failure {
    let e = e.without_url();
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // The innermost cause says the most ("Connection refused (os error 111)").
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    let mut innermost = None;
    while let Some(c) = cause {
        innermost = Some(c);
        cause = c.source();
    }
    let error = match innermost {
        Some(c) if !e.is_timeout() => format!("{what}: {}", redact(&c.to_string(), url)),
        _ => what.to_string(),
    };
    Failure {
        error,
        status: None,
        retry: true,
        retry_after: None,
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    Some(Duration::from_millis(ms.max(0) as u64))
}

/// The start of a receiver's answer, on one line, without the URL.
fn quote(body: &str, url: &str) -> String {
    let line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut short: String = line.chars().take(QUOTE_CHARS).collect();
    if short.len() < line.len() {
        short.push_str("...");
    }
    redact(&short, url)
}

/// Removes the URL, and its path (where the token is), from a text.
fn redact(text: &str, url: &str) -> String {
    let mut out = text.replace(url, "***");
    if let Some(path) = url_path(url) {
        out = out.replace(path, "/***");
    }
    out
}

/// The path of an `http(s)://host/path` URL, when it has more than `/`.
fn url_path(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let path = &rest[rest.find('/')?..];
    (path.len() > 1).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_gets_escaped_text_and_teams_an_adaptive_card() {
        let slack = Service::Slack.payload("Sync failed", "a < b & c");
        assert_eq!(slack, json!({"text": "*Sync failed*\na &lt; b &amp; c"}));
        let teams = Service::Teams.payload("Sync failed", "details");
        assert_eq!(teams["type"], "message");
        let card = &teams["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert_eq!(card["content"]["body"][0]["text"], "Sync failed");
        assert_eq!(card["content"]["body"][0]["weight"], "Bolder");
        assert_eq!(card["content"]["body"][1]["text"], "details");
    }

    #[test]
    fn delays_double_honour_retry_after_and_are_capped() {
        let r = BACKGROUND;
        let first = delay(r, 1, None);
        assert!(first >= r.first_delay && first <= r.first_delay * 3 / 2);
        let third = delay(r, 3, None);
        assert!(third >= r.first_delay * 4 && third <= r.first_delay * 6);
        assert_eq!(
            delay(r, 1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(delay(r, 1, Some(Duration::from_secs(3600))), r.max_delay);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(parse_retry_after(" 2 "), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn quotes_never_hold_the_url_or_its_path() {
        let url = "https://hooks.slack.com/services/T0/B0/SECRET";
        let body = format!("no_service for {url} (path /services/T0/B0/SECRET)");
        let quoted = quote(&body, url);
        assert!(!quoted.contains("SECRET"), "{quoted}");
        assert_eq!(quoted, "no_service for *** (path /***)");
        assert_eq!(quote(&"x".repeat(500), url).len(), QUOTE_CHARS + 3);
        assert_eq!(url_path("http://127.0.0.1:9"), None);
    }
}
