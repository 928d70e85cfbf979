//! The HTTP side of the fake: accept loop, the order a request goes through, routing.
//!
//! Each request is counted (by path and by `Intercom-Version` header), delayed by the configured
//! latency (a tokio sleep, so other requests proceed), then answered with an injected fault, or
//! refused without the bearer token (401), or refused by the rate limiter (429), or routed. Only
//! requests that reach the limiter count against it. Every answer carries `X-Request-Id` and the
//! `X-RateLimit-*` headers. Locks are held only while an answer is gathered, never while bytes are
//! written to the socket.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use super::cursor::{decode, parse_query, Walk};
use super::error::ApiError;
use super::limits::{Faults, Quota, RateLimiter};
use super::list::{
    list, render_admins, render_page, PageParams, CONTACTS_PER_PAGE, CONVERSATIONS_PER_PAGE,
};
use super::scroll::Scrolls;
use super::search::{Dates, Search};
use super::store::{Resource, Store};
use crate::fake_stripe::clock::Clock;
use crate::fake_stripe::lock;

/// The largest search body the fake reads.
const MAX_BODY: usize = 1 << 20;

/// State shared by the server and the [`FakeIntercom`](super::FakeIntercom) handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    /// The workspace's company scroll and its faults.
    pub scrolls: Mutex<Scrolls>,
    pub limiter: Mutex<RateLimiter>,
    pub faults: Mutex<Faults>,
    /// Successful answers rewritten on the way out.
    pub rewrites: crate::rewrite::Rewrites,
    /// Stamps `updated_at` on changes and webhook notifications.
    pub clock: Clock,
    pub token: String,
    /// `Bearer <token>`, the one `Authorization` value accepted.
    accepted: String,
    pub client_secret: String,
    pub app_id: String,
    pub requests: AtomicU64,
    /// Requests per path (query excluded), for `requests_to`.
    pub by_path: Mutex<HashMap<String, u64>>,
    /// Requests per `Intercom-Version` value ("" when absent).
    pub versions: Mutex<HashMap<String, u64>>,
    /// 429 answers sent, whatever caused them.
    pub rate_limited: AtomicU64,
    pub latency_micros: AtomicU64,
    /// Seconds the search index lags behind: objects updated more recently are not found yet.
    pub search_lag: AtomicI64,
    /// Notifications built so far, to make their ids unique.
    pub notifications: AtomicU64,
}

impl Shared {
    pub fn new(store: Store, token: String, client_secret: String, app_id: String) -> Self {
        Shared {
            store: Mutex::new(store),
            scrolls: Mutex::new(Scrolls::default()),
            limiter: Mutex::new(RateLimiter::default()),
            faults: Mutex::new(Faults::default()),
            rewrites: crate::rewrite::Rewrites::default(),
            clock: Clock::new(),
            accepted: format!("Bearer {token}"),
            token,
            client_secret,
            app_id,
            requests: AtomicU64::new(0),
            by_path: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
            rate_limited: AtomicU64::new(0),
            latency_micros: AtomicU64::new(0),
            search_lag: AtomicI64::new(0),
            notifications: AtomicU64::new(0),
        }
    }

    fn count(&self, path: &str, version: &str) -> u64 {
        *lock(&self.by_path).entry(path.to_owned()).or_default() += 1;
        *lock(&self.versions).entry(version.to_owned()).or_default() += 1;
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A request id shaped like Intercom's (a UUID), from the request's number.
fn request_id(number: u64) -> String {
    format!("00000000-0000-4000-8000-{number:012x}")
}

/// Answers one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let version = req
        .headers()
        .get("intercom-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let number = shared.count(req.uri().path(), version);
    let latency = shared.latency_micros.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    let now = Instant::now();
    let authorized = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == shared.accepted);
    let fault = lock(&shared.faults).take();
    let (result, quota) = match (fault, authorized) {
        (Some(status), _) => (
            Err(ApiError::injected(status)),
            lock(&shared.limiter).peek(now),
        ),
        (None, false) => (
            Err(ApiError::unauthorized()),
            lock(&shared.limiter).peek(now),
        ),
        (None, true) => match lock(&shared.limiter).take(now) {
            Err(quota) => (Err(ApiError::rate_limited()), quota),
            Ok(quota) => (Ok(()), quota),
        },
    };
    let path = req.uri().path().to_owned();
    let result = match result {
        Ok(()) => route(&shared, req, now).await,
        Err(e) => Err(e),
    };
    let result = result.map(|body| shared.rewrites.apply(&path, body));
    let request_id = request_id(number);
    let (status, body) = match result {
        Ok(body) => (StatusCode::OK, body),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.body(&request_id),
        ),
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        shared.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
    Ok(respond(status, body, &request_id, quota))
}

fn respond(
    status: StatusCode,
    body: Bytes,
    request_id: &str,
    quota: Quota,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    let values = [
        ("x-request-id", request_id.to_owned()),
        ("x-ratelimit-limit", quota.limit.to_string()),
        ("x-ratelimit-remaining", quota.remaining.to_string()),
        ("x-ratelimit-reset", quota.reset.to_string()),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// Answers one authorised request.
async fn route(shared: &Shared, req: Request<Incoming>, now: Instant) -> Result<Bytes, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query().unwrap_or_default());
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let segments: Vec<String> = path.trim_matches('/').split('/').map(decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["admins"]) => Ok(render_admins(lock(&shared.store).table(Resource::Admin))),
        (&Method::GET, ["companies", "scroll"]) => {
            let store = lock(&shared.store);
            lock(&shared.scrolls).request(
                param("scroll_param"),
                store.table(Resource::Company),
                now,
            )
        }
        (&Method::GET, ["contacts"]) => {
            let p = PageParams::parse(
                param("per_page"),
                param("starting_after"),
                Walk::ContactList,
                CONTACTS_PER_PAGE,
            )?;
            let page = list(
                lock(&shared.store).table(Resource::Contact),
                Walk::ContactList,
                &p,
            );
            Ok(render_page("list", "data", &page))
        }
        (&Method::GET, ["conversations"]) => {
            let p = PageParams::parse(
                param("per_page"),
                param("starting_after"),
                Walk::ConversationList,
                CONVERSATIONS_PER_PAGE,
            )?;
            let page = list(
                lock(&shared.store).table(Resource::Conversation),
                Walk::ConversationList,
                &p,
            );
            Ok(render_page("conversation.list", "conversations", &page))
        }
        (&Method::POST, ["contacts", "search"]) => {
            let body = read_body(req).await?;
            search(shared, &body, Resource::Contact)
        }
        (&Method::POST, ["conversations", "search"]) => {
            let body = read_body(req).await?;
            search(shared, &body, Resource::Conversation)
        }
        (&Method::GET, [segment, id]) => {
            let (resource, missing): (Resource, fn() -> ApiError) = match *segment {
                "admins" => (Resource::Admin, ApiError::admin_not_found),
                "companies" => (Resource::Company, ApiError::company_not_found),
                "contacts" => (Resource::Contact, ApiError::user_not_found),
                "conversations" => (Resource::Conversation, ApiError::resource_not_found),
                _ => return Err(ApiError::resource_not_found()),
            };
            let store = lock(&shared.store);
            let stored = store.table(resource).row(id).ok_or_else(missing)?;
            Ok(store.retrieved(resource, stored))
        }
        _ => Err(ApiError::resource_not_found()),
    }
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| ApiError::invalid(format!("could not read the request body: {e}")))
}

/// Answers `POST /contacts/search` or `POST /conversations/search`.
fn search(shared: &Shared, body: &[u8], resource: Resource) -> Result<Bytes, ApiError> {
    let (walk, dates, per_page, list_type, key) = match resource {
        Resource::Contact => (
            Walk::ContactSearch,
            Dates::Days,
            CONTACTS_PER_PAGE,
            "list",
            "data",
        ),
        _ => (
            Walk::ConversationSearch,
            Dates::Seconds,
            CONVERSATIONS_PER_PAGE,
            "conversation.list",
            "conversations",
        ),
    };
    let search = Search::parse(body, walk, dates, per_page)?;
    let visible = match shared.search_lag.load(Ordering::Relaxed) {
        lag if lag > 0 => shared.clock.now().saturating_sub(lag),
        _ => i64::MAX,
    };
    let page = search.run(lock(&shared.store).table(resource), walk, dates, visible);
    Ok(render_page(list_type, key, &page))
}
