//! The HTTP side of the connector: one reqwest client per app, the GETs and search POSTs it sends to
//! Intercom, and the classification of every way those can fail.
//!
//! Invariants: every request carries the app's access token as a bearer token (a header marked
//! sensitive, so it never shows in debug output), the pinned `Intercom-Version` and
//! `Accept: application/json`; every request first passes the app's rate-limit [`Gate`]; no
//! request is retried here (the daemon owns retries, backoff and the circuit breaker); every error
//! message names the app and the request and never contains the token.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{RequestBuilder, StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;
use supasaasy_connector::answer::{read_capped, BodyError};
use supasaasy_connector::budget::RequestBudget;
use supasaasy_connector::{AppSettings, ConnectorError, RequestObserver, Secret};

use crate::ratelimit::{self, Gate};

/// The largest answer read from Intercom: a page of 150 contacts, or a conversation with its 500
/// parts, is a few MiB.
const MAX_ANSWER_BYTES: usize = 64 << 20;
use crate::INTERCOM_API_VERSION;

/// How long a run waits when another company scroll holds the workspace's only scroll.
pub(crate) const SCROLL_BUSY_RETRY: Duration = Duration::from_secs(5);

/// Talks to one Intercom workspace on behalf of one app.
pub(crate) struct IntercomHttp {
    /// Carries the auth, version and accept headers and the app's timeouts.
    client: reqwest::Client,
    /// Scheme and host, without a trailing slash (`https://api.intercom.io`).
    base_url: String,
    /// Names the app in messages.
    app_key: String,
    /// Kept only to scrub it from any message that would echo it.
    api_key: Secret,
    /// The rate-limit budget every request of the app shares.
    gate: Gate,
    /// Told the status of every answer (or that none came) and every rate-limit wait.
    observer: Arc<dyn RequestObserver>,
    /// Spaces requests to the app's `requests_per_second`, when it has one (on top of the gate,
    /// which follows what Intercom's headers say is left).
    budget: Option<RequestBudget>,
}

/// A failed request: the classified error, plus what callers that must branch on Intercom's
/// answer (the company scroll, a fetch that finds nothing) need to know.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The HTTP status, when Intercom answered.
    pub status: Option<u16>,
    /// Intercom's error code (`errors[0].code`), when the body was an error list.
    pub code: Option<String>,
    /// The request certainly never reached Intercom (no connection), so it changed nothing there.
    pub unsent: bool,
    /// The error as the daemon sees it.
    pub error: ConnectorError,
}

impl Failure {
    /// Intercom says the object asked for does not exist: a 404 with an Intercom error list
    /// (`not_found`, `company_not_found`...). A 404 without one (a wrong base URL, a proxy) is
    /// not taken as an answer about the object.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404) && self.code.is_some()
    }

    /// Intercom answered 200 with something other than the object asked for (another object's
    /// id): asking again now is unlikely to help.
    pub fn is_another_object(&self) -> bool {
        self.status == Some(200) && self.code.as_deref() == Some(ANOTHER_OBJECT)
    }
}

/// The code of a [`Failure`] whose 200 answer was another object.
pub(crate) const ANOTHER_OBJECT: &str = "supasaasy_another_object";

impl From<Failure> for ConnectorError {
    fn from(failure: Failure) -> Self {
        failure.error
    }
}

impl IntercomHttp {
    /// Builds the client of one app.
    ///
    /// # Errors
    ///
    /// [`ConnectorError::Fatal`] when the base URL is not an http(s) URL, the token cannot be
    /// sent as a header, or the TLS stack cannot start.
    pub fn new(settings: AppSettings) -> Result<Self, ConnectorError> {
        let app_key = settings.app_key;
        let base_url = settings.base_url.trim_end_matches('/').to_owned();
        match Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => {
                return Err(ConnectorError::Fatal {
                    message: format!(
                        "base_url {base_url:?} of app {app_key} is not an http(s) URL"
                    ),
                })
            }
        }

        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", settings.api_key.expose())).map_err(
                |_| ConnectorError::Fatal {
                    message: format!(
                "the access token of app {app_key} holds characters an HTTP header cannot carry"
            ),
                },
            )?;
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(
            "intercom-version",
            HeaderValue::from_static(INTERCOM_API_VERSION),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));

        let client = reqwest::Client::builder()
            .user_agent(concat!("supasaasy/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(settings.request_timeout)
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(|err| ConnectorError::Fatal {
                message: format!(
                    "cannot build the HTTP client of app {app_key}: {}",
                    error_chain(&err)
                ),
            })?;

        Ok(IntercomHttp {
            client,
            base_url,
            app_key,
            api_key: settings.api_key,
            gate: Gate::default(),
            observer: settings.observer,
            budget: settings
                .requests_per_second
                .and_then(RequestBudget::per_second),
        })
    }

    /// The app this client serves.
    pub fn app_key(&self) -> &str {
        &self.app_key
    }

    /// The base URL requests go to, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// GETs `/{path}` with `query`; `path` must already be safe (ids are checked by the caller).
    ///
    /// # Errors
    ///
    /// A [`Failure`]: see [`classify`] for Intercom's answers; transport failures and a 2xx body
    /// that is not a JSON object are retryable.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&'static str, String)],
    ) -> Result<Value, Failure> {
        let request = format!("GET /{path}");
        let builder = self
            .client
            .get(format!("{}/{path}", self.base_url))
            .query(query);
        self.send(&request, builder).await
    }

    /// POSTs the JSON `body` to `/{path}` (a search).
    ///
    /// # Errors
    ///
    /// As for [`IntercomHttp::get`].
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        let request = format!("POST /{path}");
        let builder = self
            .client
            .post(format!("{}/{path}", self.base_url))
            .json(body);
        self.send(&request, builder).await
    }

    async fn send(&self, request: &str, builder: RequestBuilder) -> Result<Value, Failure> {
        if let Some(budget) = &self.budget {
            budget.acquire_observed(self.observer.as_ref()).await;
        }
        let permit = self.gate.acquire().await;
        if let Some(waited) = permit.waited {
            self.observer.rate_limited(waited);
            tracing::info!(
                app_key = %self.app_key,
                request,
                waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                "waited for Intercom's rate-limit window to reset"
            );
        }
        let result = self.exchange(request, builder).await;
        drop(permit);
        result.map_err(|failure| Failure {
            error: self.redact(failure.error),
            ..failure
        })
    }

    /// Sends one request: the connector's only way to Intercom, so the observer hears of each.
    async fn exchange(&self, request: &str, builder: RequestBuilder) -> Result<Value, Failure> {
        let sent = Instant::now();
        let response = match builder.send().await {
            Ok(response) => response,
            Err(err) => {
                self.observer.answered(None, sent.elapsed());
                return Err(transport_failure(&self.app_key, request, &err));
            }
        };
        let status = response.status();
        self.observer
            .answered(Some(status.as_u16()), sent.elapsed());
        let headers = response.headers().clone();
        let seen = ratelimit::parse_headers(&headers);
        self.gate.observe(seen);
        let body = read_capped(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|err| match err {
                BodyError::Read(err) => transport_failure(&self.app_key, request, &err),
                BodyError::TooLarge(max) => Failure {
                    status: Some(status.as_u16()),
                    code: None,
                    unsent: false,
                    error: ConnectorError::Fatal {
                        message: format!(
                            "{request} to Intercom for app {}: the answer is larger than {} MiB",
                            self.app_key,
                            max >> 20
                        ),
                    },
                },
            })?;
        tracing::debug!(
            app_key = %self.app_key,
            request,
            status = status.as_u16(),
            rate_limit_remaining = seen.remaining,
            "intercom answered"
        );
        if status.is_success() {
            return parse_object(&self.app_key, request, &body).map_err(|error| Failure {
                status: Some(status.as_u16()),
                code: None,
                unsent: false,
                error,
            });
        }
        let error = classify(
            &self.app_key,
            request,
            status,
            &headers,
            &body,
            ratelimit::unix_now_ms(),
        );
        if let ConnectorError::RateLimited {
            retry_after: Some(delay),
            ..
        } = &error
        {
            if status == StatusCode::TOO_MANY_REQUESTS {
                self.gate.exhaust_for(*delay);
            }
        }
        Err(Failure {
            status: Some(status.as_u16()),
            code: error_list(&body).and_then(|list| list.errors.into_iter().next()?.code),
            unsent: false,
            error,
        })
    }

    /// Scrubs the token from a message, should Intercom or a transport error ever echo it.
    fn redact(&self, err: ConnectorError) -> ConnectorError {
        let key = self.api_key.expose();
        if key.is_empty() {
            return err;
        }
        err.map_message(|message| message.replace(key, "***"))
    }
}

/// Reads a successful answer as one JSON object; anything else is a garbled answer, worth asking
/// for again.
fn parse_object(app_key: &str, request: &str, body: &[u8]) -> Result<Value, ConnectorError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(object @ Value::Object(_)) => Ok(object),
        Ok(_) => Err(ConnectorError::Retryable {
            message: format!(
                "Intercom sent something other than an object for app {app_key} on {request}"
            ),
        }),
        Err(err) => Err(ConnectorError::Retryable {
            message: format!(
                "Intercom sent an unreadable answer for app {app_key} on {request}: {err}"
            ),
        }),
    }
}

/// Intercom's error body: `{"type": "error.list", "request_id", "errors": [{"code", "message"}]}`.
#[derive(Deserialize)]
struct ErrorList {
    #[serde(default)]
    request_id: Option<String>,
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

fn error_list(body: &[u8]) -> Option<ErrorList> {
    serde_json::from_slice::<ErrorList>(body).ok()
}

/// Classifies a non-2xx answer from Intercom, at Unix time `now_ms` (milliseconds).
///
/// 429 is rate limited until the window's reset; 400 `scroll_exists` (another scroll holds the
/// workspace's only one) is rate limited for [`SCROLL_BUSY_RETRY`]; 5xx is retryable (the
/// connector only reads, so asking again cannot do harm); a rejected token (401, 403) and every
/// other 4xx are fatal, with Intercom's own code and message.
pub(crate) fn classify(
    app_key: &str,
    request: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
) -> ConnectorError {
    let list = error_list(body);
    let request_id = list
        .as_ref()
        .and_then(|l| l.request_id.clone())
        .or_else(|| {
            headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .map_or_else(String::new, |id| format!(" [{id}]"));
    let first = list.and_then(|l| l.errors.into_iter().next());
    let code = first.as_ref().and_then(|e| e.code.as_deref());
    let detail = match (code, first.as_ref().and_then(|e| e.message.as_deref())) {
        (Some(code), Some(message)) => format!(": {code}: {message}"),
        (Some(only), None) | (None, Some(only)) => format!(": {only}"),
        (None, None) => String::new(),
    };
    let status = status.as_u16();

    if status == 429 {
        let seen = ratelimit::parse_headers(headers);
        return ConnectorError::RateLimited {
            message: format!(
                "Intercom rate-limited app {app_key} on {request} (429){detail}{request_id}"
            ),
            retry_after: Some(ratelimit::retry_after(seen, headers, now_ms)),
        };
    }
    if status == 400 && code == Some("scroll_exists") {
        return ConnectorError::RateLimited {
            message: format!(
                "another company scroll is open in the Intercom workspace of app {app_key}; waiting for it to end or expire{request_id}"
            ),
            retry_after: Some(SCROLL_BUSY_RETRY),
        };
    }
    if (500..600).contains(&status) {
        return ConnectorError::Retryable {
            message: format!(
                "Intercom answered {status} for app {app_key} on {request}{detail}{request_id}"
            ),
        };
    }
    match status {
        401 | 403 => ConnectorError::Rejected {
            message: format!(
                "Intercom rejected the access token for app {app_key} ({status}); check the token in the app's api_key_env and its read permissions{detail}{request_id}"
            ),
        },
        _ => ConnectorError::Fatal {
            message: format!(
                "Intercom answered {status} for app {app_key} on {request}{detail}{request_id}"
            ),
        },
    }
}

/// Classifies a failure to send a request or read its answer.
fn transport_failure(app_key: &str, request: &str, err: &reqwest::Error) -> Failure {
    let cause = error_chain(err);
    let unsent = err.is_connect() || err.is_builder();
    let error = if err.is_builder() {
        ConnectorError::Fatal {
            message: format!("cannot build {request} for app {app_key}: {cause}"),
        }
    } else {
        let what = if err.is_timeout() {
            "timed out"
        } else if err.is_connect() {
            "could not connect"
        } else if err.is_body() || err.is_decode() {
            "lost the answer mid-body"
        } else {
            "failed"
        };
        ConnectorError::Retryable {
            message: format!("{request} to Intercom {what} for app {app_key}: {cause}"),
        }
    };
    Failure {
        status: None,
        code: None,
        unsent,
        error,
    }
}

/// An error and its sources on one line: reqwest's own message hides the cause that matters
/// ("connection refused", "operation timed out").
fn error_chain(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
