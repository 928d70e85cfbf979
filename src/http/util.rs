//! Small pieces every route uses: JSON answers, reading a bounded body, query strings, and the
//! admin bearer check.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use supasaasy_connector::Secret;

/// The response type of every route.
pub type Resp = Response<Full<Bytes>>;

/// A JSON answer.
pub fn json_response(status: StatusCode, body: &Value) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A text answer (`/metrics`).
pub fn text_response(status: StatusCode, content_type: &'static str, body: String) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// An error answer of a route, rendered as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// A header the answer carries (`Allow` for 405, `WWW-Authenticate` for 401, `Retry-After`
    /// for a 503 refused for load).
    header: Option<(hyper::header::HeaderName, &'static str)>,
}

impl ApiError {
    /// The message answered.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The status answered.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<ApiError> for Resp {
    fn from(e: ApiError) -> Resp {
        let mut resp = json_response(e.status, &json!({ "error": e.message }));
        if let Some((name, value)) = e.header {
            resp.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        resp
    }
}

/// An error answer: `{"error": message}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
        header: None,
    }
}

/// 503 with `Retry-After: 1`: the request was refused for load, and may be sent again shortly.
pub fn retry_later(message: impl Into<String>) -> ApiError {
    ApiError {
        header: Some((hyper::header::RETRY_AFTER, "1")),
        ..error(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

/// 405 with the methods the route allows.
pub fn method_not_allowed(allow: &'static str) -> ApiError {
    ApiError {
        header: Some((hyper::header::ALLOW, allow)),
        ..error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed; use {allow}"),
        )
    }
}

/// The 500 answer; the cause goes to the log, never to the caller.
pub fn internal(e: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "request failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// 503 while the database does not answer.
pub fn unavailable(e: &dyn std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "database unavailable");
    error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
}

/// The answer to a store error: 503 while the database is unreachable, else 500.
pub fn store_error(e: crate::store::StoreError) -> ApiError {
    use crate::store::StoreError;
    match e {
        StoreError::Pool(e) => unavailable(&e),
        StoreError::Db(e) if e.is_closed() => unavailable(&e),
        e => internal(&e),
    }
}

/// Reads the whole body, counting bytes as they arrive; more than `limit` is an error answer (413),
/// and so is a body that has not arrived within `timeout` (408).
pub async fn read_body(
    req: Request<Incoming>,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let collect = Limited::new(req.into_body(), limit).collect();
    let Ok(collected) = tokio::time::timeout(timeout, collect).await else {
        return Err(error(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        ));
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {limit} bytes"),
        )),
        Err(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "could not read the request body",
        )),
    }
}

/// Reads the body as `server` allows ([`read_body`]) and parses it as JSON; a body that does not
/// parse is a 400 saying why, naming the field at fault (`wait_seconds: invalid type: ...`).
pub async fn read_json<T: serde::de::DeserializeOwned>(
    ctx: &crate::context::Context,
    req: Request<Incoming>,
) -> Result<T, ApiError> {
    let server = &ctx.config.server;
    let body = read_body(req, server.max_body_bytes, server.read_timeout).await?;
    let invalid = |e: &dyn std::fmt::Display| {
        error(
            StatusCode::BAD_REQUEST,
            format!("invalid request body: {e}"),
        )
    };
    let mut de = serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| invalid(&e))?;
    de.end().map_err(|e| invalid(&e))?;
    Ok(value)
}

/// Checks `Authorization: Bearer <admin key>` in constant time; the error answer is 401.
pub fn check_admin<B>(req: &Request<B>, keys: &[Secret]) -> Result<(), ApiError> {
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !given.is_empty() && matches_any(given.as_bytes(), keys) {
        Ok(())
    } else {
        Err(ApiError {
            header: Some((hyper::header::WWW_AUTHENTICATE, "Bearer")),
            ..error(StatusCode::UNAUTHORIZED, "missing or wrong bearer key")
        })
    }
}

/// Whether `given` is one of `keys`, comparing with every key in constant time (so neither which
/// key nor how much of it matched shows in the time taken).
pub fn matches_any(given: &[u8], keys: &[Secret]) -> bool {
    use subtle::ConstantTimeEq;
    let mut found = subtle::Choice::from(0);
    for key in keys {
        let key = key.expose().as_bytes();
        if !key.is_empty() {
            found |= given.ct_eq(key);
        }
    }
    found.into()
}

/// A list route's `limit`: 1 to 1000.
///
/// # Errors
///
/// A 400 naming the bounds.
pub fn parse_limit(v: &str) -> Result<i64, ApiError> {
    v.parse()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "limit must be between 1 and 1000"))
}

/// The decoded `key=value` pairs of a query string.
///
/// # Errors
///
/// A 400 when a key or value holds a NUL (`%00`): no filter can mean one, and Postgres refuses
/// it in text.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    if pairs
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "a query parameter holds a NUL character",
        ));
    }
    Ok(pairs)
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'+' => Some((b' ', 1)),
            b'%' if i + 2 < bytes.len() => hex(bytes[i + 1])
                .zip(hex(bytes[i + 2]))
                .map(|(h, l)| (h * 16 + l, 3)),
            _ => None,
        };
        let (byte, step) = decoded.unwrap_or((bytes[i], 1));
        out.push(byte);
        i += step;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_strings() {
        assert!(query_pairs(Some("app_key=a%00b")).is_err());
        assert!(query_pairs(Some("%00=1")).is_err());
        let pairs = query_pairs(Some("a=1&b=x%20y&c=%zz&d&e=%4")).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "%zz".into()),
                ("d".into(), "".into()),
                ("e".into(), "%4".into()),
            ]
        );
    }

    #[test]
    fn any_of_several_keys_is_accepted() {
        let keys = [
            Secret::new("old-key-0123456789"),
            Secret::new("new-key-9876543210"),
        ];
        assert!(matches_any(b"old-key-0123456789", &keys));
        assert!(matches_any(b"new-key-9876543210", &keys));
        assert!(!matches_any(b"new-key-987654321", &keys));
        assert!(!matches_any(b"", &[Secret::new("")]));
    }
}
