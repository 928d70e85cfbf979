//! The HTTP side of the fake: accept loop, authentication, injected faults, the account a request
//! reaches, routing.
//!
//! Each request is counted, delayed by the configured latency (a tokio sleep, so other requests
//! proceed), then either answered with an injected fault or authenticated, sent to the account its
//! `Stripe-Account` header names (the platform without one; see [`super::connect`]) and routed.
//! Faults, the rate limit and latency are the fake's, shared by every account. A store's lock is
//! held only while a page is gathered, never while bytes are written to the socket.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};

use super::account::Account;
use super::clock::Clock;
use super::connect::Accounts;
use super::data::StripeData;
use super::error::ApiError;
use super::events::EventParams;
use super::kinds::Route;
use super::list::{render_page, render_row};
use super::query::{decode, is_created, parse_query, ListParams, Scope};

/// The header a platform names one of its connected accounts with.
const STRIPE_ACCOUNT: &str = "stripe-account";

/// Faults queued by `fail_next`.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub remaining: u64,
    pub status: u16,
}

/// State shared by the server and the [`FakeStripe`](super::FakeStripe) handle.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The platform's objects and events (also in `accounts`), so that requests without
    /// `Stripe-Account` take no lock of the registry.
    pub platform: Arc<Account>,
    /// The platform and its connected accounts. Never locked while an account's store is.
    pub accounts: RwLock<Accounts>,
    /// Stamps events and fills a missing `created` on upsert.
    pub clock: Clock,
    /// The accepted key, and the `Authorization` values that present it.
    pub api_key: String,
    accepted: [String; 3],
    /// The key as Stripe echoes it in a refusal.
    masked_key: String,
    pub requests: AtomicU64,
    /// Requests per path (query excluded), for `requests_to`.
    pub by_path: Mutex<HashMap<String, u64>>,
    /// Requests per `Stripe-Account` value, for `requests_for_account`.
    pub by_account: Mutex<HashMap<String, u64>>,
    pub faults: Mutex<Faults>,
    /// Successful answers rewritten on the way out.
    pub rewrites: crate::rewrite::Rewrites,
    pub latency_micros: AtomicU64,
    /// Stripe's rate limit, when set: requests beyond it are answered 429.
    pub rate_limit: Mutex<Option<Bucket>>,
    /// Requests answered 429 by the rate limit.
    pub rate_limited: AtomicU64,
    /// Lists refuse any `created` parameter, as localstripe does.
    pub refuse_created: AtomicBool,
}

/// A token bucket: `per_second` tokens a second, holding at most a tenth of a second's worth, so
/// requests bunched closer than the limit allows are refused.
#[derive(Debug)]
pub(crate) struct Bucket {
    pub per_second: f64,
    pub tokens: f64,
    pub last: std::time::Instant,
}

impl Bucket {
    pub fn new(per_second: f64) -> Bucket {
        Bucket {
            per_second,
            tokens: Bucket::capacity(per_second),
            last: std::time::Instant::now(),
        }
    }

    fn capacity(per_second: f64) -> f64 {
        (per_second / 10.0).max(1.0)
    }

    /// Takes a token; false when there is none left.
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.per_second;
        self.tokens = (self.tokens + refill).min(Bucket::capacity(self.per_second));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Locks a mutex, carrying on if a panicking test poisoned it: the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Read-locks a lock, carrying on if a panicking test poisoned it.
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Write-locks a lock, carrying on if a panicking test poisoned it.
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(data: StripeData) -> Self {
        let StripeData {
            api_key,
            account_id,
            store,
            connected,
        } = data;
        let accepted = [
            format!("Bearer {api_key}"),
            format!("Basic {}", base64(format!("{api_key}:").as_bytes())),
            format!("Basic {}", base64(api_key.as_bytes())),
        ];
        let clock = Clock::new();
        let accounts = Accounts::new(&account_id, store, connected, clock.now());
        Shared {
            platform: accounts.platform().clone(),
            accounts: RwLock::new(accounts),
            clock,
            masked_key: mask(&api_key),
            api_key,
            accepted,
            requests: AtomicU64::new(0),
            by_path: Mutex::new(HashMap::new()),
            by_account: Mutex::new(HashMap::new()),
            faults: Mutex::new(Faults::default()),
            rewrites: crate::rewrite::Rewrites::default(),
            latency_micros: AtomicU64::new(0),
            rate_limit: Mutex::new(None),
            rate_limited: AtomicU64::new(0),
            refuse_created: AtomicBool::new(false),
        }
    }

    /// True when the rate limit refuses this request.
    fn over_limit(&self) -> bool {
        let over = lock(&self.rate_limit).as_mut().is_some_and(|b| !b.take());
        if over {
            self.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        over
    }

    fn count(&self, path: &str, account: Option<&str>) -> u64 {
        *lock(&self.by_path).entry(path.to_owned()).or_default() += 1;
        if let Some(account) = account {
            let mut by_account = lock(&self.by_account);
            match by_account.get_mut(account) {
                Some(n) => *n += 1,
                None => {
                    by_account.insert(account.to_owned(), 1);
                }
            }
        }
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The account a request reaches: the platform without `Stripe-Account`, else the account it
    /// names, if the platform reaches it.
    fn reach(&self, account: Option<&str>) -> Result<Arc<Account>, ApiError> {
        let Some(id) = account else {
            return Ok(self.platform.clone());
        };
        read(&self.accounts)
            .reach(id)
            .cloned()
            .ok_or_else(|| ApiError::no_access(&self.masked_key, id))
    }

    fn take_fault(&self) -> Option<u16> {
        let mut faults = lock(&self.faults);
        (faults.remaining > 0).then(|| {
            faults.remaining -= 1;
            faults.status
        })
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "You did not provide an API key. You need to provide your API key in the \
                 Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
                 YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, \
                 or we can help at https://support.stripe.com/."
                    .to_owned(),
            ));
        };
        let value = value.to_str().unwrap_or_default().trim();
        if self.accepted.iter().any(|a| a == value) {
            return Ok(());
        }
        let presented = value
            .strip_prefix("Bearer ")
            .unwrap_or("(unreadable credentials)");
        Err(ApiError::unauthorized(format!(
            "Invalid API Key provided: {}",
            mask(presented)
        )))
    }
}

/// Answers one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let account =
        (req.headers().get(STRIPE_ACCOUNT)).map(|v| v.to_str().unwrap_or("(unreadable)").trim());
    let number = shared.count(req.uri().path(), account);
    let path = req.uri().path().to_owned();
    let over_limit = shared.over_limit();
    let latency = shared.latency_micros.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    let fault = if over_limit {
        Some(429)
    } else {
        shared.take_fault()
    };
    let result = match fault {
        Some(status) => Err(ApiError::injected(status)),
        None => (shared.authorize(req.headers()))
            .and_then(|()| shared.reach(account))
            .and_then(|reached| {
                let (method, uri) = (req.method(), req.uri());
                route(&shared, &reached, method, uri.path(), uri.query())
            }),
    };
    let mut response = match result {
        Ok(body) => json_response(StatusCode::OK, shared.rewrites.apply(&path, body)),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = json_response(status, e.body());
            if status == StatusCode::TOO_MANY_REQUESTS {
                r.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            r
        }
    };
    if let Ok(id) = HeaderValue::from_str(&format!("req_fake{number:010}")) {
        response.headers_mut().insert("request-id", id);
    }
    Ok(response)
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Answers one authenticated request, from the account it reached.
fn route(
    shared: &Shared,
    account: &Account,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<Bytes, ApiError> {
    let unrecognized = || ApiError::unrecognized(method.as_str(), path);
    if method != Method::GET {
        return Err(unrecognized());
    }
    let rest = path.strip_prefix("/v1/").ok_or_else(unrecognized)?;
    let route = Route::parse(rest).ok_or_else(unrecognized)?;
    let pairs = parse_query(query.unwrap_or_default());
    let lists = matches!(
        route,
        Route::List(_)
            | Route::OfCustomer(..)
            | Route::Children(..)
            | Route::Events(None)
            | Route::Accounts(None)
    );
    if lists
        && shared.refuse_created.load(Ordering::Relaxed)
        && pairs.iter().any(|(k, _)| is_created(k))
    {
        return Err(ApiError::unexpected("created"));
    }
    let store = || lock(&account.store);
    match route {
        Route::Account => Ok(render_row(&read(&shared.accounts).account(account))),
        Route::Accounts(_) if account.id != shared.platform.id => Err(ApiError::not_a_platform()),
        Route::Accounts(Some(id)) => {
            let row = read(&shared.accounts).retrieve(&decode(id, false), &shared.masked_key)?;
            Ok(render_row(&row))
        }
        Route::Accounts(None) => {
            let page = read(&shared.accounts).list(&pairs)?;
            Ok(render_page(path, &page))
        }
        Route::Events(id) => events(shared, account, id, &pairs),
        Route::Retrieve(kind, id) => {
            let row = store().retrieve(kind, &decode(id, false))?;
            Ok(render_row(&row))
        }
        Route::List(row) => {
            let params = ListParams::parse(Scope::Top(row), &pairs)?;
            let page = store().list(row, &params)?;
            Ok(render_page(path, &page))
        }
        Route::OfCustomer(row, customer) => {
            let params = ListParams::parse(Scope::OfCustomer(row), &pairs)?;
            let page = store().list_of_customer(row, &decode(customer, false), &params)?;
            Ok(render_page(path, &page))
        }
        Route::Children(row, parent) => {
            let params = ListParams::parse(Scope::Children(row), &pairs)?;
            let parent = match parent {
                Some(id) => decode(id, false),
                None => params.parent.clone().unwrap_or_default(),
            };
            let page = store().list_children(row, &parent, &params)?;
            Ok(render_page(path, &page))
        }
    }
}

/// Answers `GET /v1/events` and `GET /v1/events/{id}` from one account's log.
fn events(
    shared: &Shared,
    account: &Account,
    id: Option<&str>,
    pairs: &[(String, String)],
) -> Result<Bytes, ApiError> {
    let now = shared.clock.now();
    match id {
        Some(id) => {
            let row = lock(&account.events).retrieve(&decode(id, false), now)?;
            Ok(render_row(&row))
        }
        None => {
            let params = EventParams::parse(pairs)?;
            let page = lock(&account.events).list(params, now)?;
            Ok(render_page("/v1/events", &page))
        }
    }
}

/// Stripe's way of echoing a wrong key: a prefix, stars, the last four characters.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
}

/// Standard base64 with padding, for recognising HTTP basic credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn masks_keys_like_stripe() {
        assert_eq!(mask("sk_test_abcdefgh1234"), "sk_test_********1234");
        assert_eq!(mask("short"), "*****");
    }
}
