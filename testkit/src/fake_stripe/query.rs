//! Query strings as Stripe's list endpoints read them.
//!
//! Keys and values arrive percent-encoded (`created%5Bgte%5D=1700000000`) and are decoded before
//! anything looks at them. Parameters are then checked the way Stripe checks them: an unknown
//! parameter or a bad value is a 400 naming it, never silently ignored, so a client bug shows up in
//! tests instead of as a quietly wrong page.

use super::error::ApiError;
use super::store::Resource;

/// Stripe's default page size.
const DEFAULT_LIMIT: usize = 10;
/// Stripe's largest page size.
const MAX_LIMIT: usize = 100;

/// Subscription statuses Stripe accepts in `status=`.
const STATUSES: [&str; 10] = [
    "active",
    "past_due",
    "unpaid",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "trialing",
    "paused",
    "all",
    "ended",
];

/// Which subscriptions a `/v1/subscriptions` call asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum StatusFilter {
    /// No `status`: everything but canceled subscriptions, as Stripe does.
    #[default]
    NotCanceled,
    /// `status=all`.
    All,
    /// `status=ended`: canceled and incomplete_expired.
    Ended,
    /// One status.
    Is(String),
}

impl StatusFilter {
    /// Whether a subscription with this status is listed.
    pub fn admits(&self, status: Option<&str>) -> bool {
        match self {
            StatusFilter::NotCanceled => status != Some("canceled"),
            StatusFilter::All => true,
            StatusFilter::Ended => matches!(status, Some("canceled" | "incomplete_expired")),
            StatusFilter::Is(wanted) => status == Some(wanted.as_str()),
        }
    }
}

/// The parameters of one list call, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListParams {
    /// Page size, 1..=100.
    pub limit: usize,
    /// Return objects after (older than) this one.
    pub starting_after: Option<String>,
    /// Return objects before (newer than) this one.
    pub ending_before: Option<String>,
    /// Inclusive lower bound on `created`.
    pub created_min: Option<i64>,
    /// Inclusive upper bound on `created`.
    pub created_max: Option<i64>,
    /// Subscription status filter (subscriptions only).
    pub status: StatusFilter,
    /// `customer=` (subscriptions).
    pub customer: Option<String>,
    /// `product=` (prices, plans).
    pub product: Option<String>,
    /// `email=` (customers).
    pub email: Option<String>,
    /// `active=` (products, prices, plans).
    pub active: Option<bool>,
    /// `subscription=` (subscription items, required there).
    pub subscription: Option<String>,
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams {
            limit: DEFAULT_LIMIT,
            starting_after: None,
            ending_before: None,
            created_min: None,
            created_max: None,
            status: StatusFilter::default(),
            customer: None,
            product: None,
            email: None,
            active: None,
            subscription: None,
        }
    }
}

impl ListParams {
    /// Validates the decoded query pairs of a list call on `resource`.
    ///
    /// # Errors
    ///
    /// A 400 [`ApiError`] naming the first unknown or invalid parameter.
    pub fn parse(resource: Resource, pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let mut p = ListParams::default();
        for (key, value) in pairs {
            let value = value.as_str();
            match key.as_str() {
                k if resource == Resource::SubscriptionItem && is_created(k) => {
                    return Err(ApiError::unknown_param(k));
                }
                k if p.common(k, value)? => {}
                "status" if resource == Resource::Subscription => {
                    if !STATUSES.contains(&value) {
                        return Err(ApiError::invalid(
                            "status",
                            format!("Invalid status: must be one of {}", STATUSES.join(", ")),
                        ));
                    }
                    p.status = match value {
                        "all" => StatusFilter::All,
                        "ended" => StatusFilter::Ended,
                        s => StatusFilter::Is(s.to_owned()),
                    };
                }
                "customer" if resource == Resource::Subscription => p.customer = non_empty(value),
                "product" if matches!(resource, Resource::Price | Resource::Plan) => {
                    p.product = non_empty(value)
                }
                "email" if resource == Resource::Customer => p.email = non_empty(value),
                "active"
                    if matches!(
                        resource,
                        Resource::Product | Resource::Price | Resource::Plan
                    ) =>
                {
                    p.active = Some(parse_bool("active", value)?)
                }
                "subscription" if resource == Resource::SubscriptionItem => {
                    p.subscription = non_empty(value)
                }
                other => return Err(ApiError::unknown_param(other)),
            }
        }
        p.check_cursors()?;
        if resource == Resource::SubscriptionItem && p.subscription.is_none() {
            return Err(ApiError::missing_param("subscription"));
        }
        Ok(p)
    }

    /// Takes one of the parameters every list shares (`limit`, the cursors, `expand`, `created`);
    /// returns whether `key` was one of them.
    ///
    /// # Errors
    ///
    /// A 400 [`ApiError`] when the value is invalid.
    pub fn common(&mut self, key: &str, value: &str) -> Result<bool, ApiError> {
        match key {
            "limit" => self.limit = parse_limit(value)?,
            "starting_after" => self.starting_after = non_empty(value),
            "ending_before" => self.ending_before = non_empty(value),
            k if k == "expand" || k.starts_with("expand[") => {}
            k if is_created(k) => self.add_created(k, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Refuses both cursors at once, as Stripe does.
    ///
    /// # Errors
    ///
    /// A 400 [`ApiError`] when `starting_after` and `ending_before` are both set.
    pub fn check_cursors(&self) -> Result<(), ApiError> {
        if self.starting_after.is_some() && self.ending_before.is_some() {
            return Err(ApiError::invalid(
                "starting_after",
                "You may only specify one of these parameters: ending_before, starting_after.",
            ));
        }
        Ok(())
    }

    /// Narrows the `created` window by one `created` or `created[op]` parameter.
    fn add_created(&mut self, key: &str, value: &str) -> Result<(), ApiError> {
        let t = parse_int(key, value)?;
        let (min, max) = match key {
            "created" => (Some(t), Some(t)),
            "created[gte]" => (Some(t), None),
            "created[gt]" => (Some(t.saturating_add(1)), None),
            "created[lte]" => (None, Some(t)),
            "created[lt]" => (None, Some(t.saturating_sub(1))),
            other => return Err(ApiError::unknown_param(other)),
        };
        if let Some(min) = min {
            self.created_min = Some(self.created_min.map_or(min, |m| m.max(min)));
        }
        if let Some(max) = max {
            self.created_max = Some(self.created_max.map_or(max, |m| m.min(max)));
        }
        Ok(())
    }
}

fn is_created(key: &str) -> bool {
    key == "created" || key.starts_with("created[")
}

pub(crate) fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

fn parse_int(param: &str, value: &str) -> Result<i64, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::invalid(param, format!("Invalid integer: {value}")))
}

fn parse_bool(param: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::invalid(
            param,
            format!("Invalid boolean: {value}"),
        )),
    }
}

fn parse_limit(value: &str) -> Result<usize, ApiError> {
    let n = parse_int("limit", value)?;
    if (1..=MAX_LIMIT as i64).contains(&n) {
        Ok(n as usize)
    } else {
        Err(ApiError::invalid(
            "limit",
            format!("Invalid limit: must be between 1 and {MAX_LIMIT}"),
        ))
    }
}

/// Splits and percent-decodes a query string (`+` is a space, as in forms).
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (decode(k, true), decode(v, true))
        })
        .collect()
}

/// Percent-decodes one component; malformed escapes are kept as they are.
pub(crate) fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: Option<&u8>) -> Option<u8> {
    match b? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(resource: Resource, q: &str) -> Result<ListParams, ApiError> {
        ListParams::parse(resource, &parse_query(q))
    }

    #[test]
    fn decodes_bracketed_keys_and_values() {
        let pairs = parse_query("created%5Bgte%5D=10&email=a%2Bb%40x.com&name=a+b&bad=%zz%4");
        assert_eq!(pairs[0], ("created[gte]".into(), "10".into()));
        assert_eq!(pairs[1], ("email".into(), "a+b@x.com".into()));
        assert_eq!(pairs[2], ("name".into(), "a b".into()));
        assert_eq!(pairs[3], ("bad".into(), "%zz%4".into()));
    }

    #[test]
    fn created_bounds_intersect() {
        let p = parse(
            Resource::Customer,
            "created[gt]=10&created[lte]=20&created[gte]=5&created[lt]=30",
        )
        .unwrap();
        assert_eq!((p.created_min, p.created_max), (Some(11), Some(20)));
        let p = parse(Resource::Customer, "created=7").unwrap();
        assert_eq!((p.created_min, p.created_max), (Some(7), Some(7)));
    }

    #[test]
    fn rejects_what_stripe_rejects() {
        assert_eq!(
            parse(Resource::Customer, "limit=0")
                .unwrap_err()
                .param
                .as_deref(),
            Some("limit")
        );
        assert!(parse(Resource::Customer, "limit=101").is_err());
        assert!(parse(Resource::Customer, "limit=abc").is_err());
        assert_eq!(parse(Resource::Customer, "limit=100").unwrap().limit, 100);
        assert!(parse(Resource::Customer, "status=all").is_err());
        assert!(parse(Resource::Customer, "created[foo]=1").is_err());
        assert!(parse(Resource::Subscription, "status=weird").is_err());
        assert!(parse(Resource::Customer, "starting_after=a&ending_before=b").is_err());
        assert_eq!(
            parse(Resource::SubscriptionItem, "limit=5")
                .unwrap_err()
                .code,
            Some("parameter_missing")
        );
        assert!(parse(Resource::Customer, "expand%5B%5D=data.default_source").is_ok());
    }
}
