//! The HTTP side of the connector: one reqwest client per app, the GET of a list page or of one
//! object, and the classification of every way those GETs can fail.
//!
//! Invariants: every request carries the app's key as a bearer token (a header marked sensitive, so
//! it never shows in debug output) and the pinned `Stripe-Version`; no request is retried here (the
//! daemon owns retries, backoff and the circuit breaker); every error message names the app and the
//! request and never contains the API key.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;
use supasaasy_connector::answer::{read_capped, BodyError};
use supasaasy_connector::budget::RequestBudget;
use supasaasy_connector::{AppSettings, ConnectorError, RequestObserver, Secret};

use crate::listing::List;
use crate::STRIPE_API_VERSION;

/// Talks to one Stripe account on behalf of one app.
pub(crate) struct StripeHttp {
    /// Carries the auth and version headers and the app's timeouts.
    client: reqwest::Client,
    /// Scheme and host, without a trailing slash (`https://api.stripe.com`).
    base_url: String,
    /// Names the app in messages.
    app_key: String,
    /// Kept only to scrub it from any message that would echo it.
    api_key: Secret,
    /// Told the status of every answer (or that none came).
    observer: Arc<dyn RequestObserver>,
    /// Spaces requests to the app's `requests_per_second`, when it has one.
    budget: Option<RequestBudget>,
}

impl StripeHttp {
    /// Builds the client of one app.
    ///
    /// # Errors
    ///
    /// [`ConnectorError::Fatal`] when the base URL is not an http(s) URL, the API key cannot be sent
    /// as a header, or the TLS stack cannot start.
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
                        "the API key of app {app_key} holds characters an HTTP header cannot carry"
                    ),
                },
            )?;
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert(
            "stripe-version",
            HeaderValue::from_static(STRIPE_API_VERSION),
        );

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

        Ok(StripeHttp {
            client,
            base_url,
            app_key,
            api_key: settings.api_key,
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

    /// GETs one page of the list at `/v1/{path}`.
    ///
    /// # Errors
    ///
    /// A classified [`ConnectorError`]: see [`classify`] for Stripe's answers; transport failures
    /// and bodies that are not a list are retryable; a request that cannot even be built is fatal.
    pub async fn get_list(
        &self,
        path: &str,
        query: &[(&'static str, String)],
        account: Option<&str>,
    ) -> Result<List, ConnectorError> {
        match self.get_list_of(path, query, account).await {
            Ok(Ok(list)) => Ok(list),
            Ok(Err(missing)) | Err(missing) => Err(missing),
        }
    }

    /// GETs one page of the list at `/v1/{path}`, a list under an object (`customers/{id}/...`):
    /// `Ok(Err(_))` when Stripe answers 404 `resource_missing` (the object is gone, so it has
    /// nothing under it).
    ///
    /// # Errors
    ///
    /// As [`StripeHttp::get_list`].
    pub async fn get_list_of(
        &self,
        path: &str,
        query: &[(&'static str, String)],
        account: Option<&str>,
    ) -> Result<Result<List, ConnectorError>, ConnectorError> {
        let request = request_line(&format!("/v1/{path}"), account);
        let url = format!("{}/v1/{path}", self.base_url);
        let result = match self.fetch(&request, &url, query, account).await {
            Ok(Answer::Body(body)) => parse_list(&self.app_key, &request, &body).map(Ok),
            Ok(Answer::Missing(err)) => Ok(Err(self.redact(err))),
            Err(err) => Err(err),
        };
        result.map_err(|err| self.redact(err))
    }

    /// GETs one object at `/v1/{path}/{id}` (`/v1/{path}` for an empty id); `None` when Stripe answers 404 `resource_missing`
    /// (the object is gone, or never was). `id` must already be safe as a path segment.
    ///
    /// # Errors
    ///
    /// A classified [`ConnectorError`] as for [`StripeHttp::get_list`]; a body that is not a JSON
    /// object is retryable.
    pub async fn get_object(
        &self,
        path: &str,
        id: &str,
        query: &[(&'static str, String)],
        account: Option<&str>,
    ) -> Result<Option<Value>, ConnectorError> {
        // An empty id asks for the singleton at `path` (`/v1/account`).
        let path = if id.is_empty() {
            format!("/v1/{path}")
        } else {
            format!("/v1/{path}/{id}")
        };
        let request = request_line(&path, account);
        let url = format!("{}{path}", self.base_url);
        let result = match self.fetch(&request, &url, query, account).await {
            Ok(Answer::Body(body)) => parse_object(&self.app_key, &request, &body).map(Some),
            Ok(Answer::Missing(_)) => Ok(None),
            Err(err) => Err(err),
        };
        result.map_err(|err| self.redact(err))
    }

    /// Sends one GET: the connector's only request to Stripe, so the observer hears of each.
    async fn fetch(
        &self,
        request: &str,
        url: &str,
        query: &[(&'static str, String)],
        account: Option<&str>,
    ) -> Result<Answer, ConnectorError> {
        if let Some(budget) = &self.budget {
            budget
                .acquire_observed_for(account.unwrap_or_default(), self.observer.as_ref())
                .await;
        }
        let sent = Instant::now();
        let mut get = self.client.get(url).query(query);
        if let Some(account) = account {
            get = get.header("stripe-account", account);
        }
        let response = match get.send().await {
            Ok(response) => response,
            Err(err) => {
                self.observer.answered(None, sent.elapsed());
                return Err(transport_error(&self.app_key, request, &err));
            }
        };
        let status = response.status();
        self.observer
            .answered(Some(status.as_u16()), sent.elapsed());
        let headers = response.headers().clone();
        let body = read_capped(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|err| match err {
                BodyError::Read(err) => transport_error(&self.app_key, request, &err),
                BodyError::TooLarge(max) => ConnectorError::Fatal {
                    message: format!(
                        "{request} to Stripe for app {}: the answer is larger than {} MiB",
                        self.app_key,
                        max >> 20
                    ),
                },
            })?;
        tracing::debug!(
            app_key = %self.app_key,
            request,
            status = status.as_u16(),
            request_id = headers.get("request-id").and_then(|v| v.to_str().ok()),
            "stripe answered"
        );
        if status.is_success() {
            return Ok(Answer::Body(body));
        }
        let err = classify(&self.app_key, request, status, &headers, &body);
        // Stripe answers a connected account the platform may no longer reach with 403, or with
        // 401 `account_invalid` ("does not have access to account ... Application access may
        // have been revoked"); a bare 401 is the key's own problem.
        let refused = status == StatusCode::FORBIDDEN
            || (status == StatusCode::UNAUTHORIZED && contains(&body, b"account_invalid"));
        if let (Some(account), true) = (account, refused) {
            return Err(ConnectorError::AccountRefused {
                message: format!(
                    "Stripe refused connected account {account} to app {} ({}): access revoked or \
                     the account gone; {}",
                    self.app_key,
                    status.as_u16(),
                    err.message()
                ),
            });
        }
        if status == StatusCode::BAD_REQUEST
            && query.iter().any(|(k, _)| k.starts_with("created["))
            && refuses_created(&body)
        {
            return Err(ConnectorError::FilterRefused {
                message: err.message().to_owned(),
            });
        }
        if status == StatusCode::NOT_FOUND
            && error_code(&body).as_deref() == Some("resource_missing")
        {
            return Ok(Answer::Missing(err));
        }
        Err(err)
    }

    /// Scrubs the API key from a message, should Stripe or a transport error ever echo it.
    fn redact(&self, err: ConnectorError) -> ConnectorError {
        let key = self.api_key.expose();
        if key.is_empty() {
            return err;
        }
        err.map_message(|message| message.replace(key, "***"))
    }
}

/// A successful answer, or Stripe saying the object asked for does not exist.
enum Answer {
    /// The body of a 2xx answer.
    Body(bytes::Bytes),
    /// 404 `resource_missing`, classified as any other error for callers that expect a list.
    Missing(ConnectorError),
}

/// Whether `haystack` holds `needle`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `GET {path}`, and the connected account when there is one, for messages.
fn request_line(path: &str, account: Option<&str>) -> String {
    match account {
        Some(account) => format!("GET {path} (account {account})"),
        None => format!("GET {path}"),
    }
}

/// Reads a successful answer as a list page; anything else is treated as a garbled answer, worth
/// asking for again.
fn parse_list(app_key: &str, request: &str, body: &[u8]) -> Result<List, ConnectorError> {
    serde_json::from_slice(body).map_err(|err| ConnectorError::Retryable {
        message: format!("Stripe sent an unreadable list for app {app_key} on {request}: {err}"),
    })
}

/// Reads a successful answer as one object; anything else is a garbled answer, worth asking for
/// again.
fn parse_object(app_key: &str, request: &str, body: &[u8]) -> Result<Value, ConnectorError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(object @ Value::Object(_)) => Ok(object),
        Ok(_) => Err(ConnectorError::Retryable {
            message: format!(
                "Stripe sent something other than an object for app {app_key} on {request}"
            ),
        }),
        Err(err) => Err(ConnectorError::Retryable {
            message: format!(
                "Stripe sent an unreadable object for app {app_key} on {request}: {err}"
            ),
        }),
    }
}

/// Whether a 400's body blames the `created` filter: Stripe names it in `error.param`
/// (`created`), Stripe-compatible fakes in the message ("Unexpected created").
fn refuses_created(body: &[u8]) -> bool {
    let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) else {
        return false;
    };
    error
        .param
        .as_deref()
        .is_some_and(|p| p.starts_with("created"))
        || error
            .message
            .as_deref()
            .is_some_and(|m| m.to_ascii_lowercase().contains("created"))
}

/// The `error.code` of a Stripe error body, when there is one.
fn error_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<ErrorBody>(body).ok()?.error.code
}

/// Stripe's error body: `{"error": {"type", "code", "message", ...}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: StripeError,
}

#[derive(Deserialize)]
struct StripeError {
    code: Option<String>,
    message: Option<String>,
    param: Option<String>,
}

/// Classifies a non-2xx answer from Stripe.
///
/// Lock contention (`lock_timeout`) and `Stripe-Should-Retry: true` are retryable whatever the
/// status, except that a 429 stays [`ConnectorError::RateLimited`] so its `Retry-After` is kept;
/// 5xx is retryable even with `Stripe-Should-Retry: false`, since the connector only sends GETs and
/// asking again cannot do harm; a rejected key (401, 403) and every other 4xx are fatal.
fn classify(
    app_key: &str,
    request: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> ConnectorError {
    let error = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let code = error.as_ref().and_then(|e| e.code.as_deref());
    let detail = match error.as_ref().and_then(|e| e.message.as_deref()) {
        Some(message) => format!(": {message}"),
        None => String::new(),
    };
    let request_id = match headers.get("request-id").and_then(|v| v.to_str().ok()) {
        Some(id) => format!(" [{id}]"),
        None => String::new(),
    };
    let status = status.as_u16();

    if code == Some("lock_timeout") {
        return ConnectorError::Retryable {
            message: format!(
                "Stripe could not lock the object for app {app_key} on {request} ({status}){detail}{request_id}"
            ),
        };
    }
    if status == 429 {
        return ConnectorError::RateLimited {
            message: format!(
                "Stripe rate-limited app {app_key} on {request} (429){detail}{request_id}"
            ),
            retry_after: retry_after(headers),
        };
    }
    if should_retry(headers) {
        return ConnectorError::Retryable {
            message: format!(
                "Stripe answered {status} for app {app_key} on {request} and asked for a retry{detail}{request_id}"
            ),
        };
    }
    if (500..600).contains(&status) {
        return ConnectorError::Retryable {
            message: format!(
                "Stripe answered {status} for app {app_key} on {request}{detail}{request_id}"
            ),
        };
    }
    match status {
        401 => ConnectorError::Rejected {
            message: format!(
                "Stripe rejected the API key for app {app_key} (401); check the key in the app's api_key_env{request_id}"
            ),
        },
        403 => ConnectorError::Rejected {
            message: format!(
                "Stripe refused {request} to the API key of app {app_key} (403); a restricted key needs read access to customers, products, prices, plans and subscriptions{detail}{request_id}"
            ),
        },
        _ => ConnectorError::Fatal {
            message: format!(
                "Stripe answered {status} for app {app_key} on {request}{detail}{request_id}"
            ),
        },
    }
}

/// `Stripe-Should-Retry: true`: Stripe knows the request may succeed if sent again.
fn should_retry(headers: &HeaderMap) -> bool {
    headers
        .get("stripe-should-retry")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The largest answer read from Stripe: a page of 100 objects with expanded lists is a few MiB.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// The longest `Retry-After` honoured: a provider asking for a day (or for more seconds than a
/// `Duration` holds) gets a minute, and the task's own retries and backoff do the rest.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The delay of a `Retry-After` header given in seconds, at most [`MAX_RETRY_AFTER`]; an HTTP
/// date or garbage gives `None`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => value
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(MAX_RETRY_AFTER.as_secs_f64())))?,
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// Classifies a failure to send a request or read its answer.
fn transport_error(app_key: &str, request: &str, err: &reqwest::Error) -> ConnectorError {
    let cause = error_chain(err);
    if err.is_builder() {
        return ConnectorError::Fatal {
            message: format!("cannot build {request} for app {app_key}: {cause}"),
        };
    }
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
        message: format!("{request} to Stripe {what} for app {app_key}: {cause}"),
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
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const APP: &str = "stripe_prod";
    const REQUEST: &str = "GET /v1/customers";
    const KEY: &str = "sk_test_not_a_real_key_123";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn stripe_error(code: Option<&str>, message: &str) -> Vec<u8> {
        serde_json::json!({"error": {"type": "invalid_request_error", "code": code, "message": message}})
            .to_string()
            .into_bytes()
    }

    fn classify_status(status: u16, headers: &HeaderMap, body: &[u8]) -> ConnectorError {
        let status = StatusCode::from_u16(status).expect("status");
        classify(APP, REQUEST, status, headers, body)
    }

    fn settings(base_url: &str) -> AppSettings {
        AppSettings {
            request_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
            ..AppSettings::new(APP, Secret::new(KEY), base_url)
        }
    }

    fn message(err: &ConnectorError) -> &str {
        err.message()
    }

    #[test]
    fn rate_limit_keeps_retry_after_seconds() {
        let err = classify_status(429, &headers(&[("retry-after", "7")]), b"");
        match err {
            ConnectorError::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
        let err = classify_status(429, &headers(&[("retry-after", "0.5")]), b"");
        assert!(matches!(
            err,
            ConnectorError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_millis(500)
        ));
    }

    #[test]
    fn retry_after_is_at_most_a_minute() {
        for value in [
            "86400",
            "18446744073709551615",
            "1e300",
            "99999999999999999999",
        ] {
            let err = classify_status(429, &headers(&[("retry-after", value)]), b"");
            assert!(
                matches!(
                    err,
                    ConnectorError::RateLimited { retry_after: Some(d), .. } if d == MAX_RETRY_AFTER
                ),
                "{value}: {err:?}"
            );
        }
    }

    #[test]
    fn rate_limit_without_usable_retry_after_has_no_delay() {
        for value in [
            None,
            Some("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some("-3"),
            Some("soon"),
        ] {
            let mut map = HeaderMap::new();
            if let Some(value) = value {
                map.insert(RETRY_AFTER, HeaderValue::from_static(value));
            }
            let err = classify_status(429, &map, &stripe_error(Some("rate_limit"), "Too many"));
            assert!(
                matches!(
                    err,
                    ConnectorError::RateLimited {
                        retry_after: None,
                        ..
                    }
                ),
                "{value:?}: {err:?}"
            );
            assert!(message(&err).contains(APP));
        }
    }

    #[test]
    fn rate_limit_stays_rate_limited_when_stripe_says_retry() {
        let err = classify_status(
            429,
            &headers(&[("stripe-should-retry", "true"), ("retry-after", "2")]),
            b"",
        );
        assert!(matches!(
            err,
            ConnectorError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(2)
        ));
    }

    #[test]
    fn server_errors_are_retryable() {
        for status in [500, 502, 503, 504] {
            let err = classify_status(status, &HeaderMap::new(), b"<html>oops</html>");
            assert!(matches!(err, ConnectorError::Retryable { .. }), "{status}");
            assert!(message(&err).contains(&status.to_string()));
            assert!(message(&err).contains(APP));
        }
        let err = classify_status(500, &headers(&[("stripe-should-retry", "false")]), b"");
        assert!(matches!(err, ConnectorError::Retryable { .. }));
    }

    #[test]
    fn should_retry_header_makes_any_status_retryable() {
        for status in [400, 401, 404, 409] {
            let err = classify_status(
                status,
                &headers(&[("stripe-should-retry", "true")]),
                &stripe_error(None, "try again"),
            );
            assert!(matches!(err, ConnectorError::Retryable { .. }), "{status}");
        }
        let err = classify_status(
            400,
            &headers(&[("stripe-should-retry", "false")]),
            &stripe_error(None, "bad"),
        );
        assert!(matches!(err, ConnectorError::Fatal { .. }));
    }

    #[test]
    fn lock_timeout_is_retryable() {
        for status in [409, 429, 400] {
            let err = classify_status(
                status,
                &HeaderMap::new(),
                &stripe_error(
                    Some("lock_timeout"),
                    "This object cannot be accessed right now",
                ),
            );
            assert!(matches!(err, ConnectorError::Retryable { .. }), "{status}");
        }
    }

    #[test]
    fn rejected_key_is_fatal_and_actionable() {
        let err = classify_status(
            401,
            &HeaderMap::new(),
            &stripe_error(None, "Invalid API Key provided: sk_test_****_123"),
        );
        assert!(matches!(err, ConnectorError::Rejected { .. }));
        assert!(!err.is_retryable() && err.is_provider_failure());
        assert!(message(&err).starts_with("Stripe rejected the API key for app stripe_prod (401)"));
        assert!(!message(&err).contains("sk_test"));

        let err = classify_status(
            403,
            &headers(&[("request-id", "req_abc")]),
            &stripe_error(
                None,
                "The provided key does not have the required permissions",
            ),
        );
        assert!(matches!(err, ConnectorError::Rejected { .. }));
        let text = message(&err);
        assert!(
            text.contains("stripe_prod") && text.contains("403"),
            "{text}"
        );
        assert!(
            text.contains("required permissions") && text.contains("req_abc"),
            "{text}"
        );
    }

    #[test]
    fn other_client_errors_are_fatal_with_stripes_message() {
        let err = classify_status(
            400,
            &HeaderMap::new(),
            &stripe_error(Some("parameter_unknown"), "Received unknown parameter: foo"),
        );
        assert!(matches!(err, ConnectorError::Fatal { .. }));
        assert_eq!(
            message(&err),
            "Stripe answered 400 for app stripe_prod on GET /v1/customers: Received unknown parameter: foo"
        );

        let err = classify_status(404, &HeaderMap::new(), b"not json");
        assert!(matches!(err, ConnectorError::Fatal { .. }));
        assert_eq!(
            message(&err),
            "Stripe answered 404 for app stripe_prod on GET /v1/customers"
        );
    }

    #[test]
    fn unreadable_success_body_is_retryable() {
        for body in [
            &b"not json"[..],
            b"{\"data\": 3}",
            b"{\"object\": \"list\"}",
            b"",
        ] {
            let err = parse_list(APP, REQUEST, body).expect_err("malformed");
            assert!(matches!(err, ConnectorError::Retryable { .. }));
            assert!(message(&err).contains(APP));
        }
        let list = parse_list(
            APP,
            REQUEST,
            br#"{"data": [{"id": "cus_1"}], "has_more": true}"#,
        )
        .expect("list");
        assert!(list.has_more);
    }

    #[test]
    fn new_checks_base_url_and_strips_trailing_slash() {
        let http = StripeHttp::new(settings("http://127.0.0.1:12111/")).expect("client");
        assert_eq!(http.base_url(), "http://127.0.0.1:12111");
        assert_eq!(http.app_key(), APP);
        for bad in ["", "api.stripe.com", "ftp://api.stripe.com", "https://"] {
            let err = StripeHttp::new(settings(bad)).err().expect(bad);
            assert!(matches!(err, ConnectorError::Fatal { .. }), "{bad}");
        }
    }

    #[test]
    fn key_unfit_for_a_header_is_fatal_and_not_echoed() {
        let mut settings = settings("https://api.stripe.com");
        settings.api_key = Secret::new("sk_test_bad\nkey");
        let err = StripeHttp::new(settings).err().expect("bad key");
        assert!(matches!(err, ConnectorError::Fatal { .. }));
        assert!(!message(&err).contains("sk_test_bad"));
    }

    #[test]
    fn messages_never_carry_the_key() {
        let http = StripeHttp::new(settings("https://api.stripe.com")).expect("client");
        let echoed = ConnectorError::Fatal {
            message: format!("Stripe answered 400: bad key {KEY}"),
        };
        let err = http.redact(echoed);
        assert_eq!(message(&err), "Stripe answered 400: bad key ***");
    }

    #[tokio::test]
    async fn refused_connection_is_retryable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let http = StripeHttp::new(settings(&format!("http://{addr}"))).expect("client");
        let err = http
            .get_list("customers", &[], None)
            .await
            .expect_err("refused");
        assert!(matches!(err, ConnectorError::Retryable { .. }), "{err:?}");
        assert!(message(&err).contains(APP));
    }

    #[tokio::test]
    async fn silent_server_times_out_as_retryable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hold = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let mut settings = settings(&format!("http://{addr}"));
        settings.request_timeout = Duration::from_millis(200);
        let http = StripeHttp::new(settings).expect("client");
        let err = http
            .get_list("customers", &[], None)
            .await
            .expect_err("timeout");
        assert!(matches!(err, ConnectorError::Retryable { .. }), "{err:?}");
        assert!(message(&err).contains("timed out"), "{err:?}");
        hold.abort();
    }

    /// Reads one request and writes `answer` as it is, then holds the connection `linger` long
    /// before dropping it.
    async fn answer_raw(
        answer: &'static str,
        linger: Duration,
    ) -> (String, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(answer.as_bytes()).await;
            tokio::time::sleep(linger).await;
        });
        (format!("http://{addr}"), server)
    }

    #[tokio::test]
    async fn an_answer_larger_than_any_page_is_refused() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1099511627776\r\n\r\n{";
        let (base, server) = answer_raw(head, Duration::from_secs(5)).await;
        let http = StripeHttp::new(settings(&base)).expect("client");
        let err = http
            .get_list("customers", &[], None)
            .await
            .expect_err("too large");
        assert!(matches!(err, ConnectorError::Fatal { .. }), "{err:?}");
        assert!(message(&err).contains("larger than 64 MiB"), "{err:?}");
        server.abort();
    }

    #[tokio::test]
    async fn answer_cut_mid_body_is_retryable() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"data\": [";
        // Dropping the socket at once ends the body 90 bytes short.
        let (base, server) = answer_raw(head, Duration::ZERO).await;
        let http = StripeHttp::new(settings(&base)).expect("client");
        let err = http
            .get_list("customers", &[], None)
            .await
            .expect_err("cut");
        assert!(matches!(err, ConnectorError::Retryable { .. }), "{err:?}");
        server.await.expect("server task");
    }

    /// Serves one request with `status` and `body`, and hands back the request line it got.
    async fn answer_once(
        status: u16,
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = vec![0u8; 8192];
            let n = socket.read(&mut request).await.unwrap_or(0);
            let text = String::from_utf8_lossy(&request[..n]).into_owned();
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            text.lines().next().unwrap_or_default().to_owned()
        });
        (format!("http://{addr}"), server)
    }

    /// Like [`answer_once`], handing back the whole request (headers included).
    async fn answer_once_whole(
        status: u16,
        body: &'static str,
    ) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = vec![0u8; 8192];
            let n = socket.read(&mut request).await.unwrap_or(0);
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            String::from_utf8_lossy(&request[..n]).to_ascii_lowercase()
        });
        (format!("http://{addr}"), server)
    }

    #[tokio::test]
    async fn a_connected_account_is_asked_with_its_header_and_its_refusal_names_it() {
        let (base, server) =
            answer_once_whole(200, r#"{"object": "list", "data": [], "has_more": false}"#).await;
        let http = StripeHttp::new(settings(&base)).expect("client");
        http.get_list("customers", &[], Some("acct_1TENANT"))
            .await
            .expect("list");
        let request = server.await.expect("server");
        assert!(
            request.contains("\r\nstripe-account: acct_1tenant\r\n"),
            "{request}"
        );

        let (base, server) =
            answer_once_whole(200, r#"{"object": "list", "data": [], "has_more": false}"#).await;
        let http = StripeHttp::new(settings(&base)).expect("client");
        http.get_list("customers", &[], None).await.expect("list");
        assert!(!server.await.expect("server").contains("stripe-account"));

        let refused = r#"{"error": {"type": "invalid_request_error", "code": "account_invalid", "message": "The provided key does not have access to account 'acct_1GONE' (or that account does not exist)."}}"#;
        for status in [401, 403] {
            let (base, server) = answer_once_whole(status, refused).await;
            let http = StripeHttp::new(settings(&base)).expect("client");
            let err = http
                .get_list("customers", &[], Some("acct_1GONE"))
                .await
                .expect_err("refused");
            assert!(
                matches!(err, ConnectorError::AccountRefused { .. }),
                "{status}: {err:?}"
            );
            assert!(message(&err).contains("acct_1GONE"), "{err:?}");
            server.await.expect("server");
        }
        // The platform's own 403 is the app's problem, as before.
        let (base, server) = answer_once_whole(403, refused).await;
        let http = StripeHttp::new(settings(&base)).expect("client");
        let err = http
            .get_list("customers", &[], None)
            .await
            .expect_err("403");
        assert!(
            !matches!(err, ConnectorError::AccountRefused { .. }),
            "{err:?}"
        );
        server.await.expect("server");
    }

    #[tokio::test]
    async fn a_list_refusing_the_created_filter_says_so() {
        let created = vec![("created[gte]", "1".to_owned())];
        // localstripe's answer, and Stripe's when a list takes no such filter.
        for body in [
            r#"{"error": {"type": "invalid_request_error", "message": "Unexpected created"}}"#,
            r#"{"error": {"type": "invalid_request_error", "message": "Received unknown parameter: created", "param": "created"}}"#,
        ] {
            let (base, server) = answer_once(400, body).await;
            let http = StripeHttp::new(settings(&base)).expect("client");
            let err = http
                .get_list("products", &created, None)
                .await
                .expect_err("400");
            assert!(
                matches!(err, ConnectorError::FilterRefused { .. }),
                "{err:?}"
            );
            assert!(message(&err).contains(APP), "{err:?}");
            server.await.expect("server");
        }
        // Another 400, or one to a request without the filter, is what it was.
        for (body, query) in [
            (
                r#"{"error": {"message": "Invalid limit", "param": "limit"}}"#,
                created.clone(),
            ),
            (r#"{"error": {"message": "Unexpected created"}}"#, vec![]),
        ] {
            let (base, server) = answer_once(400, body).await;
            let http = StripeHttp::new(settings(&base)).expect("client");
            let err = http
                .get_list("products", &query, None)
                .await
                .expect_err("400");
            assert!(matches!(err, ConnectorError::Fatal { .. }), "{err:?}");
            server.await.expect("server");
        }
    }

    #[tokio::test]
    async fn an_answer_that_is_not_a_list_names_the_app_and_request() {
        let (base, server) = answer_once(200, r#"{"id": "cus_1", "object": "customer"}"#).await;
        let http = StripeHttp::new(settings(&base)).expect("client");
        let err = http
            .get_list("customers", &[], None)
            .await
            .expect_err("not a list");
        assert!(matches!(err, ConnectorError::Retryable { .. }), "{err:?}");
        let text = message(&err);
        assert!(
            text.contains(APP) && text.contains("GET /v1/customers"),
            "{text}"
        );
        server.await.expect("server");
    }

    /// Remembers the answers the client told it of.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<Option<u16>>>);

    impl RequestObserver for Recorder {
        fn answered(&self, status: Option<u16>, _elapsed: Duration) {
            self.0.lock().expect("lock").push(status);
        }
    }

    #[tokio::test]
    async fn the_observer_hears_every_answer() {
        let recorder = Arc::new(Recorder::default());
        for status in [200, 429] {
            let (base, server) = answer_once(status, r#"{"id": "cus_1"}"#).await;
            let settings = settings(&base).with_observer(recorder.clone());
            let http = StripeHttp::new(settings).expect("client");
            let _ = http.get_object("customers", "cus_1", &[], None).await;
            server.await.expect("server");
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let settings = settings(&format!("http://{addr}")).with_observer(recorder.clone());
        let http = StripeHttp::new(settings).expect("client");
        http.get_list("customers", &[], None)
            .await
            .expect_err("refused");
        assert_eq!(
            *recorder.0.lock().expect("lock"),
            vec![Some(200), Some(429), None]
        );
    }

    #[tokio::test]
    async fn get_object_reads_one_object() {
        let (base, server) = answer_once(200, r#"{"id": "cus_1", "object": "customer"}"#).await;
        let http = StripeHttp::new(settings(&base)).expect("client");
        let object = http
            .get_object("customers", "cus_1", &[], None)
            .await
            .expect("object");
        assert_eq!(
            object.and_then(|o| o["id"].as_str().map(str::to_owned)),
            Some("cus_1".into())
        );
        assert_eq!(
            server.await.expect("server"),
            "GET /v1/customers/cus_1 HTTP/1.1"
        );
    }

    #[tokio::test]
    async fn get_object_reports_a_missing_object_as_none() {
        let missing = r#"{"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such customer: 'cus_9'"}}"#;
        let (base, server) = answer_once(404, missing).await;
        let http = StripeHttp::new(settings(&base)).expect("client");
        assert_eq!(
            http.get_object("customers", "cus_9", &[], None)
                .await
                .expect("gone"),
            None
        );
        server.await.expect("server");

        // The same answer to a list request is an error like any other 404.
        let (base, server) = answer_once(404, missing).await;
        let http = StripeHttp::new(settings(&base)).expect("client");
        let err = http
            .get_list("customers", &[], None)
            .await
            .expect_err("404");
        assert!(matches!(err, ConnectorError::Fatal { .. }), "{err:?}");
        server.await.expect("server");
    }

    #[tokio::test]
    async fn get_object_other_answers_are_classified() {
        let unrecognized = r#"{"error": {"type": "invalid_request_error", "message": "Unrecognized request URL"}}"#;
        for (status, body, fatal) in [
            (404, unrecognized, true),
            (400, unrecognized, true),
            (200, "[1, 2]", false),
            (200, "not json", false),
            (503, "", false),
        ] {
            let (base, server) = answer_once(status, body).await;
            let http = StripeHttp::new(settings(&base)).expect("client");
            let err = http
                .get_object("customers", "cus_1", &[], None)
                .await
                .expect_err("error");
            assert_eq!(
                matches!(err, ConnectorError::Fatal { .. }),
                fatal,
                "{status} {body}: {err:?}"
            );
            assert!(message(&err).contains(APP), "{err:?}");
            server.await.expect("server");
        }
    }
}
