//! Query strings as Stripe's list endpoints read them.
//!
//! Keys and values arrive percent-encoded (`created%5Bgte%5D=1700000000`) and are decoded before
//! anything looks at them. Parameters are then checked the way Stripe checks them: an unknown
//! parameter or a bad value is a 400 naming it, never silently ignored, so a client bug shows up in
//! tests instead of as a quietly wrong page. Which parameters a list takes comes from its row of
//! the connector's table (`created` where it has the filter, its fixed `params`) and its fixture
//! (the fields it filters on).

use supasaasy_stripe::resources::{ChildList, TABLE};

use super::error::ApiError;
use super::kinds::Kind;

/// Stripe's default page size.
const DEFAULT_LIMIT: usize = 10;
/// Stripe's largest page size.
const MAX_LIMIT: usize = 100;

/// Statuses Stripe accepts in `status=`, on the lists whose rows fix `status` (subscriptions).
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

/// Which objects a list asks for by status. A list whose row fixes `status` (to ask for `all`)
/// hides canceled objects without it, as Stripe's subscription list does; other lists have no
/// status filter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum StatusFilter {
    /// No `status` on a list that hides canceled objects without one.
    NotCanceled,
    /// `status=all`, or a list without a status filter.
    #[default]
    All,
    /// `status=ended`: canceled and incomplete_expired.
    Ended,
    /// One status.
    Is(String),
}

impl StatusFilter {
    /// Whether an object with this status is listed.
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
    /// Status filter (lists whose rows fix `status`).
    pub status: StatusFilter,
    /// `customer=` (lists of objects with a `customer`).
    pub customer: Option<String>,
    /// `product=` (prices, plans).
    pub product: Option<String>,
    /// `email=` (customers).
    pub email: Option<String>,
    /// `active=` (archivable resources).
    pub active: Option<bool>,
    /// The parent a child list asks for by query parameter (`subscription=`, required there).
    pub parent: Option<String>,
}

/// Which list a query is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The top-level list of `TABLE[i]`.
    Top(usize),
    /// The objects of `TABLE[i]` under one customer.
    OfCustomer(usize),
    /// The child list of a parent of `TABLE[i]`.
    Children(usize),
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
            parent: None,
        }
    }
}

impl ListParams {
    /// Validates the decoded query pairs of a list call.
    ///
    /// # Errors
    ///
    /// A 400 [`ApiError`] naming the first unknown or invalid parameter: `created` on a list
    /// without the filter is one.
    pub fn parse(scope: Scope, pairs: &[(String, String)]) -> Result<Self, ApiError> {
        let (row, top) = match scope {
            Scope::Top(row) => (row, true),
            Scope::OfCustomer(row) | Scope::Children(row) => (row, false),
        };
        let resource = &TABLE[row];
        let kind = Kind::Row(row);
        let hides_canceled = top && resource.params.iter().any(|(k, _)| *k == "status");
        let parent_param = match (scope, resource.child.map(|c| c.list)) {
            (Scope::Children(_), Some(ChildList::Query { param, .. })) => Some(param),
            _ => None,
        };
        let filters = |k: &str| top && kind.filters_on(k);
        let mut p = ListParams {
            status: if hides_canceled {
                StatusFilter::NotCanceled
            } else {
                StatusFilter::All
            },
            ..ListParams::default()
        };
        for (key, value) in pairs {
            let value = value.as_str();
            match key.as_str() {
                k if is_created(k) && !(top && resource.created_filter) => {
                    return Err(ApiError::unknown_param(k));
                }
                k if p.common(k, value)? => {}
                "status" if hides_canceled => p.status = parse_status(value)?,
                k if top && resource.params.iter().any(|(fixed, _)| *fixed == k) => {}
                "customer" if filters("customer") => p.customer = non_empty(value),
                "product" if filters("product") => p.product = non_empty(value),
                "email" if filters("email") => p.email = non_empty(value),
                "active" if top && resource.archivable => {
                    p.active = Some(parse_bool("active", value)?)
                }
                k if Some(k) == parent_param => p.parent = non_empty(value),
                other => return Err(ApiError::unknown_param(other)),
            }
        }
        p.check_cursors()?;
        if let (Some(param), None) = (parent_param, &p.parent) {
            return Err(ApiError::missing_param(param));
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

/// `created` or `created[op]`.
pub(crate) fn is_created(key: &str) -> bool {
    key == "created" || key.starts_with("created[")
}

pub(crate) fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

fn parse_status(value: &str) -> Result<StatusFilter, ApiError> {
    if !STATUSES.contains(&value) {
        return Err(ApiError::invalid(
            "status",
            format!("Invalid status: must be one of {}", STATUSES.join(", ")),
        ));
    }
    Ok(match value {
        "all" => StatusFilter::All,
        "ended" => StatusFilter::Ended,
        s => StatusFilter::Is(s.to_owned()),
    })
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

    fn top(name: &str) -> Scope {
        Scope::Top(Kind::named(name).index())
    }

    fn parse(scope: Scope, q: &str) -> Result<ListParams, ApiError> {
        ListParams::parse(scope, &parse_query(q))
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
            top("customer"),
            "created[gt]=10&created[lte]=20&created[gte]=5&created[lt]=30",
        )
        .unwrap();
        assert_eq!((p.created_min, p.created_max), (Some(11), Some(20)));
        let p = parse(top("customer"), "created=7").unwrap();
        assert_eq!((p.created_min, p.created_max), (Some(7), Some(7)));
    }

    #[test]
    fn rejects_what_stripe_rejects() {
        assert_eq!(
            parse(top("customer"), "limit=0")
                .unwrap_err()
                .param
                .as_deref(),
            Some("limit")
        );
        assert!(parse(top("customer"), "limit=101").is_err());
        assert!(parse(top("customer"), "limit=abc").is_err());
        assert_eq!(parse(top("customer"), "limit=100").unwrap().limit, 100);
        assert!(parse(top("customer"), "status=all").is_err());
        assert!(parse(top("customer"), "created[foo]=1").is_err());
        assert!(parse(top("subscription"), "status=weird").is_err());
        assert!(parse(top("customer"), "starting_after=a&ending_before=b").is_err());
        let items = Scope::Children(Kind::named("subscription").index());
        assert_eq!(
            parse(items, "limit=5").unwrap_err().code,
            Some("parameter_missing")
        );
        assert_eq!(
            parse(items, "subscription=sub_1")
                .unwrap()
                .parent
                .as_deref(),
            Some("sub_1")
        );
        assert!(parse(items, "subscription=sub_1&created[gte]=1").is_err());
        assert!(parse(top("customer"), "expand%5B%5D=data.default_source").is_ok());
    }

    #[test]
    fn the_table_decides_what_each_list_takes() {
        let subs = parse(top("subscription"), "status=all&customer=cus_1").unwrap();
        assert_eq!(subs.status, StatusFilter::All);
        assert_eq!(
            parse(top("subscription"), "").unwrap().status,
            StatusFilter::NotCanceled
        );
        assert_eq!(parse(top("charge"), "").unwrap().status, StatusFilter::All);
        assert!(parse(top("charge"), "status=all").is_err());
        assert!(parse(top("invoice"), "expand[]=data.payments&customer=cus_1").is_ok());
        assert!(parse(top("price"), "active=false&product=prod_1").is_ok());
        assert!(parse(top("charge"), "active=true").is_err());
        let tax_ids = Scope::OfCustomer(Kind::named("tax_id").index());
        let refused = parse(tax_ids, "created[gte]=1").unwrap_err();
        assert_eq!(refused.param.as_deref(), Some("created[gte]"));
        assert!(parse(tax_ids, "limit=3&starting_after=txi_1").is_ok());
    }
}
