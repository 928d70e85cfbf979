//! Tests of the HTTP client: error classification and requests against one-shot local servers.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const APP: &str = "intercom_eu";
const REQUEST: &str = "GET /contacts";
const TOKEN: &str = "dG9rOmFfcmVhbF9sb29raW5nX3Rva2Vu";
const NOW_MS: i64 = 1_700_000_000_000;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_static(value));
    }
    map
}

fn intercom_error(code: &str, message: &str) -> Vec<u8> {
    serde_json::json!({
        "type": "error.list",
        "request_id": "req-7",
        "errors": [{"code": code, "message": message}],
    })
    .to_string()
    .into_bytes()
}

fn classify_status(status: u16, headers: &HeaderMap, body: &[u8]) -> ConnectorError {
    let status = StatusCode::from_u16(status).expect("status");
    classify(APP, REQUEST, status, headers, body, NOW_MS)
}

fn settings(base_url: &str) -> AppSettings {
    AppSettings {
        request_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        ..AppSettings::new(APP, Secret::new(TOKEN), base_url)
    }
}

fn message(err: &ConnectorError) -> &str {
    err.message()
}

#[test]
fn too_many_requests_waits_for_the_reset() {
    let err = classify_status(
        429,
        &headers(&[
            ("x-ratelimit-limit", "10000"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1700000004"),
        ]),
        &intercom_error("rate_limit_exceeded", "Exceeded rate limit"),
    );
    match &err {
        ConnectorError::RateLimited { retry_after, .. } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(4)));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(message(&err).contains(APP) && message(&err).contains("429"));

    let err = classify_status(429, &HeaderMap::new(), b"");
    assert!(matches!(
        err,
        ConnectorError::RateLimited { retry_after: Some(d), .. } if d == ratelimit::DEFAULT_RETRY
    ));
}

#[test]
fn an_open_scroll_elsewhere_is_a_short_rate_limit() {
    let err = classify_status(
        400,
        &HeaderMap::new(),
        &intercom_error("scroll_exists", "scroll already exists for this workspace"),
    );
    match &err {
        ConnectorError::RateLimited { retry_after, .. } => {
            assert_eq!(*retry_after, Some(SCROLL_BUSY_RETRY));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(message(&err).contains("another company scroll"));
}

#[test]
fn server_errors_are_retryable() {
    for status in [500, 502, 503, 504] {
        let err = classify_status(status, &HeaderMap::new(), b"<html>oops</html>");
        assert!(matches!(err, ConnectorError::Retryable { .. }), "{status}");
        assert!(message(&err).contains(&status.to_string()));
        assert!(message(&err).contains(APP));
    }
    let err = classify_status(
        500,
        &HeaderMap::new(),
        &intercom_error(
            "server_error",
            "Request failed due to an internal network error. Please restart the scroll operation.",
        ),
    );
    assert!(message(&err).contains("restart the scroll"), "{err:?}");
}

#[test]
fn rejected_token_is_fatal_and_names_the_app() {
    for status in [401, 403] {
        let err = classify_status(
            status,
            &HeaderMap::new(),
            &intercom_error("unauthorized", "Access Token Invalid"),
        );
        assert!(matches!(err, ConnectorError::Rejected { .. }), "{status}");
        assert!(
            message(&err).starts_with(&format!(
                "Intercom rejected the access token for app {APP} ({status})"
            )),
            "{err:?}"
        );
        assert!(message(&err).contains("Access Token Invalid"));
        assert!(message(&err).contains("[req-7]"));
    }
}

#[test]
fn other_client_errors_are_fatal_with_intercoms_code_and_message() {
    let err = classify_status(
        400,
        &HeaderMap::new(),
        &intercom_error("parameter_invalid", "per_page must be at most 150"),
    );
    assert_eq!(
        message(&err),
        "Intercom answered 400 for app intercom_eu on GET /contacts: parameter_invalid: per_page must be at most 150 [req-7]"
    );
    assert!(matches!(err, ConnectorError::Fatal { .. }));

    let err = classify_status(
        404,
        &headers(&[("x-request-id", "hdr-1")]),
        b"<html>Not Found</html>",
    );
    assert!(matches!(err, ConnectorError::Fatal { .. }));
    assert_eq!(
        message(&err),
        "Intercom answered 404 for app intercom_eu on GET /contacts [hdr-1]"
    );
}

#[test]
fn unreadable_success_body_is_retryable() {
    for body in [&b"not json"[..], b"[1, 2]", b"", b"\"text\""] {
        let err = parse_object(APP, REQUEST, body).expect_err("malformed");
        assert!(matches!(err, ConnectorError::Retryable { .. }));
        assert!(message(&err).contains(APP));
    }
}

#[test]
fn new_checks_base_url_and_strips_trailing_slash() {
    let http = IntercomHttp::new(settings("https://api.eu.intercom.io/")).expect("client");
    assert_eq!(http.base_url(), "https://api.eu.intercom.io");
    assert_eq!(http.app_key(), APP);
    for bad in ["", "api.intercom.io", "ftp://api.intercom.io", "https://"] {
        let err = IntercomHttp::new(settings(bad)).err().expect(bad);
        assert!(matches!(err, ConnectorError::Fatal { .. }), "{bad}");
    }
}

#[test]
fn token_unfit_for_a_header_is_fatal_and_not_echoed() {
    let mut settings = settings("https://api.intercom.io");
    settings.api_key = Secret::new("tok_bad\nvalue");
    let err = IntercomHttp::new(settings).err().expect("bad token");
    assert!(matches!(err, ConnectorError::Fatal { .. }));
    assert!(!message(&err).contains("tok_bad"));
}

#[test]
fn messages_never_carry_the_token() {
    let http = IntercomHttp::new(settings("https://api.intercom.io")).expect("client");
    let echoed = ConnectorError::Fatal {
        message: format!("Intercom answered 400: bad token {TOKEN}"),
    };
    assert_eq!(
        message(&http.redact(echoed)),
        "Intercom answered 400: bad token ***"
    );
}

#[tokio::test]
async fn refused_connection_is_retryable_and_unsent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let http = IntercomHttp::new(settings(&format!("http://{addr}"))).expect("client");
    let failure = http.get("contacts", &[]).await.expect_err("refused");
    assert!(failure.unsent);
    assert!(matches!(failure.error, ConnectorError::Retryable { .. }));
    assert!(message(&failure.error).contains(APP));
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
    let http = IntercomHttp::new(settings).expect("client");
    let failure = http.get("contacts", &[]).await.expect_err("timeout");
    assert!(!failure.unsent, "the request may have been read");
    assert!(message(&failure.error).contains("timed out"), "{failure:?}");
    hold.abort();
}

/// Serves one request with `status`, `extra` headers and `body`, and hands back the request
/// (head and body) it got.
async fn answer_once(
    status: u16,
    extra: &'static str,
    body: &'static str,
) -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        let mut buffer = vec![0u8; 8192];
        // Read until the head and a body of the announced length are in.
        loop {
            let n = socket.read(&mut buffer).await.unwrap_or(0);
            request.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&request).to_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        let answer = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = socket.write_all(answer.as_bytes()).await;
        String::from_utf8_lossy(&request).into_owned()
    });
    (format!("http://{addr}"), server)
}

#[tokio::test]
async fn every_request_carries_token_version_and_accept() {
    let (base, server) = answer_once(200, "", r#"{"type": "admin.list", "admins": []}"#).await;
    let http = IntercomHttp::new(settings(&base)).expect("client");
    let body = http
        .get("contacts", &[("per_page", "150".into())])
        .await
        .expect("answer");
    assert_eq!(body["type"], "admin.list");
    let request = server.await.expect("server");
    let lower = request.to_lowercase();
    assert!(
        request.starts_with("GET /contacts?per_page=150 HTTP/1.1"),
        "{request}"
    );
    assert!(lower.contains(&format!("authorization: bearer {}", TOKEN.to_lowercase())));
    assert!(lower.contains("intercom-version: 2.14"));
    assert!(lower.contains("accept: application/json"));
}

#[tokio::test]
async fn a_search_posts_json() {
    let (base, server) = answer_once(200, "", r#"{"type": "list", "data": []}"#).await;
    let http = IntercomHttp::new(settings(&base)).expect("client");
    http.post(
        "contacts/search",
        &serde_json::json!({"query": {"field": "id"}}),
    )
    .await
    .expect("answer");
    let request = server.await.expect("server");
    assert!(
        request.starts_with("POST /contacts/search HTTP/1.1"),
        "{request}"
    );
    assert!(request
        .to_lowercase()
        .contains("content-type: application/json"));
    assert!(
        request.ends_with(r#"{"query":{"field":"id"}}"#),
        "{request}"
    );
}

#[tokio::test]
async fn a_missing_object_is_told_apart_from_a_wrong_url() {
    let (base, server) = answer_once(
        404,
        "",
        r#"{"type": "error.list", "errors": [{"code": "not_found", "message": "User Not Found"}]}"#,
    )
    .await;
    let http = IntercomHttp::new(settings(&base)).expect("client");
    let failure = http.get("contacts/abc", &[]).await.expect_err("404");
    assert!(failure.is_not_found());
    assert_eq!(failure.code.as_deref(), Some("not_found"));
    server.await.expect("server");

    let (base, server) = answer_once(404, "", "<html>no route</html>").await;
    let http = IntercomHttp::new(settings(&base)).expect("client");
    let failure = http.get("contacts/abc", &[]).await.expect_err("404");
    assert!(!failure.is_not_found());
    assert!(matches!(failure.error, ConnectorError::Fatal { .. }));
    server.await.expect("server");
}

#[tokio::test]
async fn a_429_holds_the_next_request_until_the_reset() {
    let (base, server) = answer_once(
        429,
        "x-ratelimit-remaining: 0\r\n",
        r#"{"type": "error.list", "errors": [{"code": "rate_limit_exceeded"}]}"#,
    )
    .await;
    let http = IntercomHttp::new(settings(&base)).expect("client");
    let failure = http.get("contacts", &[]).await.expect_err("429");
    assert!(matches!(
        failure.error,
        ConnectorError::RateLimited { retry_after: Some(d), .. } if d == ratelimit::DEFAULT_RETRY
    ));
    server.await.expect("server");
    let wait = http.gate.pending_wait();
    assert!(
        wait.is_some_and(|w| w > Duration::from_secs(8)),
        "the gate holds: {wait:?}"
    );
}

/// Remembers what the client told it.
#[derive(Default)]
struct Recorder {
    answers: std::sync::Mutex<Vec<Option<u16>>>,
    waits: std::sync::Mutex<Vec<Duration>>,
}

impl RequestObserver for Recorder {
    fn answered(&self, status: Option<u16>, _elapsed: Duration) {
        self.answers.lock().expect("lock").push(status);
    }

    fn rate_limited(&self, waited: Duration) {
        self.waits.lock().expect("lock").push(waited);
    }
}

#[tokio::test]
async fn the_observer_hears_every_answer_and_every_wait() {
    let recorder = Arc::new(Recorder::default());
    let (base, server) = answer_once(200, "", r#"{"type": "list", "data": []}"#).await;
    let http = IntercomHttp::new(settings(&base).with_observer(recorder.clone())).expect("client");
    http.gate.exhaust_for(Duration::from_millis(50));
    http.get("contacts", &[]).await.expect("answer");
    server.await.expect("server");
    let (base, server) = answer_once(503, "", "").await;
    let http = IntercomHttp::new(settings(&base).with_observer(recorder.clone())).expect("client");
    http.get("contacts", &[]).await.expect_err("503");
    server.await.expect("server");

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let http =
        IntercomHttp::new(settings(&format!("http://{addr}")).with_observer(recorder.clone()))
            .expect("client");
    http.get("contacts", &[]).await.expect_err("refused");

    assert_eq!(
        *recorder.answers.lock().expect("lock"),
        vec![Some(200), Some(503), None]
    );
    let waits = recorder.waits.lock().expect("lock").clone();
    assert!(
        matches!(waits.as_slice(), [w] if *w > Duration::ZERO),
        "{waits:?}"
    );
}
