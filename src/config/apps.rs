//! One `[[apps]]` entry: its connector, key, secrets, base URL, resources, window, request
//! budget and Stripe Connect, checked into an [`AppConfig`].

use chrono::{DateTime, Utc};
use serde::Deserialize;
use supasaasy_connector::Secret;

use supasaasy_connector::Provider;

use super::{AppConfig, ConfigError, ConnectAccounts, ConnectConfig, Env};
use crate::providers;

/// The default of `trailing_window_hours`: a week, the longest Stripe usually keeps a balance
/// transaction pending.
const DEFAULT_TRAILING_WINDOW_HOURS: i64 = 168;

pub(super) fn validate_app(i: usize, a: RawApp, env: &Env) -> Result<AppConfig, ConfigError> {
    let key = |k: &str| format!("apps[{i}].{k}");
    let valid_key = !a.app_key.is_empty()
        && a.app_key.len() <= 64
        && a.app_key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid_key {
        return Err(ConfigError::new(
            key("app_key"),
            format!("{:?} must match ^[a-z0-9_]{{1,64}}$", a.app_key),
        ));
    }
    let connector =
        providers::named(&a.connector).map_err(|e| ConfigError::new(key("connector"), e))?;
    let all = connector.resources;
    let connect = validate_connect(&key, a.connect, connector, env)?;
    let sync_resources = match a.sync_resources {
        // The connected accounts are listed by a Connect app only, and always.
        None => all
            .iter()
            .filter(|r| !r.connected_accounts || connect.is_some())
            .map(|r| r.name.to_string())
            .collect(),
        Some(list) => {
            for name in &list {
                if !all.iter().any(|r| r.name == name) {
                    let known: Vec<_> = all.iter().map(|r| r.name).collect();
                    return Err(ConfigError::new(
                        key("sync_resources"),
                        format!(
                            "{connector} has no resource {name:?} (known: {})",
                            known.join(", ")
                        ),
                    ));
                }
            }
            if let Some(r) = all.iter().find(|r| {
                r.connected_accounts && connect.is_none() && list.contains(&r.name.to_string())
            }) {
                return Err(ConfigError::new(
                    key("sync_resources"),
                    format!(
                        "{:?} lists Connect's accounts: set [apps.connect] enabled = true",
                        r.name
                    ),
                ));
            }
            // Keep the connector's order, drop repeats.
            all.iter()
                .filter(|r| {
                    list.iter().any(|n| n == r.name) || (r.connected_accounts && connect.is_some())
                })
                .map(|r| r.name.to_string())
                .collect()
        }
    };
    let base_url = match a
        .base_url_env
        .as_deref()
        .and_then(|var| env.var(var))
        .filter(|v| !v.is_empty())
    {
        Some(url) => url,
        None => a
            .base_url
            .unwrap_or_else(|| connector.default_base_url.to_string()),
    };
    if !super::is_http_url(&base_url) {
        return Err(ConfigError::new(
            key("base_url"),
            format!("{base_url:?} is not an http(s) URL"),
        ));
    }
    let sync_from = a
        .sync_from
        .map(|s| {
            let t = DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    ConfigError::new(key("sync_from"), format!("{s:?} is not RFC 3339: {e}"))
                })?;
            // Providers count time in Unix seconds from 1970: an earlier filter is a negative
            // `created`, which none of them documents.
            if !(0..4_102_444_800).contains(&t.timestamp()) {
                return Err(ConfigError::new(
                    key("sync_from"),
                    format!("{s:?} is not between 1970 and 2100"),
                ));
            }
            Ok(t)
        })
        .transpose()?;
    let api_key_env = a
        .api_key_env
        .ok_or_else(|| ConfigError::new(key("api_key_env"), "is required"))?;
    let api_key = env
        .secret(&key("api_key_env"), &api_key_env)?
        .unwrap_or_else(|| Secret::new(""));
    let requests_per_second = match a.requests_per_second {
        None => (connector.default_requests_per_second)(api_key.expose()),
        Some(0.0) => None,
        Some(n) if (0.001..=100_000.0).contains(&n) => Some(n),
        Some(n) => {
            return Err(ConfigError::new(
                key("requests_per_second"),
                format!("must be between 0.001 and 100000 (or 0 for no budget), got {n}"),
            ))
        }
    };
    let trailing_window = match a.trailing_window_hours {
        None => chrono::Duration::hours(DEFAULT_TRAILING_WINDOW_HOURS),
        Some(h) if (1..=24 * 365).contains(&h) => chrono::Duration::hours(h),
        Some(h) => {
            return Err(ConfigError::new(
                key("trailing_window_hours"),
                format!("must be between 1 and 8760 hours, got {h}"),
            ))
        }
    };
    Ok(AppConfig {
        trailing_window,
        api_key,
        requests_per_second,
        webhook_secret: a
            .webhook_secret_env
            .map(|var| env.secret(&key("webhook_secret_env"), &var))
            .transpose()?
            .flatten(),
        name: a.name.unwrap_or_else(|| a.app_key.clone()),
        app_key: a.app_key,
        connector,
        base_url: base_url.trim_end_matches('/').to_string(),
        sync_resources,
        sync_from,
        connect,
    })
}

/// `[apps.connect]`: `None` unless enabled.
fn validate_connect(
    key: &dyn Fn(&str) -> String,
    raw: Option<RawConnect>,
    connector: &Provider,
    env: &Env,
) -> Result<Option<ConnectConfig>, ConfigError> {
    let Some(raw) = raw.filter(|c| c.enabled) else {
        return Ok(None);
    };
    if !connector.resources.iter().any(|r| r.connected_accounts) {
        return Err(ConfigError::new(
            key("connect.enabled"),
            format!(
                "{} has no connected accounts (Connect is Stripe's)",
                connector.name
            ),
        ));
    }
    let accounts = match raw.accounts {
        None => ConnectAccounts::All,
        Some(RawAccounts::Word(word)) if word == "all" => ConnectAccounts::All,
        Some(RawAccounts::Word(word)) => {
            return Err(ConfigError::new(
                key("connect.accounts"),
                format!("{word:?} is neither \"all\" nor a list of account ids"),
            ))
        }
        Some(RawAccounts::List(list)) => {
            if let Some(bad) = list.iter().find(|id| !supasaasy_stripe::is_account_id(id)) {
                return Err(ConfigError::new(
                    key("connect.accounts"),
                    format!("{bad:?} is not a Stripe account id (acct_...)"),
                ));
            }
            let mut list = list;
            list.sort_unstable();
            list.dedup();
            ConnectAccounts::Only(list)
        }
    };
    let webhook_secret = raw
        .webhook_secret_env
        .map(|var| env.secret(&key("connect.webhook_secret_env"), &var))
        .transpose()?
        .flatten();
    Ok(Some(ConnectConfig {
        accounts,
        webhook_secret,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApp {
    app_key: String,
    name: Option<String>,
    connector: String,
    api_key_env: Option<String>,
    webhook_secret_env: Option<String>,
    base_url: Option<String>,
    base_url_env: Option<String>,
    sync_resources: Option<Vec<String>>,
    sync_from: Option<String>,
    requests_per_second: Option<f64>,
    trailing_window_hours: Option<i64>,
    connect: Option<RawConnect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConnect {
    #[serde(default)]
    enabled: bool,
    accounts: Option<RawAccounts>,
    webhook_secret_env: Option<String>,
}

/// `accounts = "all"` or `accounts = ["acct_...", ...]`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawAccounts {
    Word(String),
    List(Vec<String>),
}
