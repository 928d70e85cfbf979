use super::cron_expr::parse_schedule;
use super::*;

const GOOD: &str = r#"
[database]
url_env = "DATABASE_URL"
pool_size = 8

[server]
listen = "127.0.0.1:0"
admin_api_key_env = "ADMIN_API_KEY"

[[apps]]
app_key = "stripe_prod"
name = "Stripe Production"
connector = "stripe"
api_key_env = "STRIPE_API_KEY"
base_url_env = "STRIPE_BASE_URL"
sync_resources = ["subscription", "customer"]
sync_from = "2024-01-01T00:00:00Z"

[[sync_schedules]]
app_key = "stripe_prod"
cron = "0 */6 * * *"
"#;

fn env(name: &str) -> Option<String> {
    match name {
        "DATABASE_URL" => Some("postgres://localhost/x".into()),
        "ADMIN_API_KEY" => Some("admin-key-of-sixteen".into()),
        "STRIPE_API_KEY" => Some("sk_test_x".into()),
        _ => None,
    }
}

fn error_of(text: &str) -> String {
    Config::parse(text, &env).unwrap_err().to_string()
}

#[test]
fn parses_a_good_config() {
    let c = Config::parse(GOOD, &env).unwrap();
    let app = &c.apps[0];
    assert_eq!(app.app_key, "stripe_prod");
    assert_eq!(app.base_url, "https://api.stripe.com");
    // The connector's order, whatever the file's.
    assert_eq!(app.sync_resources, vec!["customer", "subscription"]);
    assert_eq!(app.sync_from.unwrap().timestamp(), 1_704_067_200);
    assert_eq!(c.sync_schedules[0].mode, SyncMode::Incremental);
    assert_eq!(c.database.pool_size, 8);
    assert_eq!(c.worker.concurrency, 4);
    assert!(
        !format!("{c:?}").contains("sk_test_x"),
        "secrets never print"
    );
}

#[test]
fn base_url_env_overrides_base_url() {
    let env = |name: &str| match name {
        "STRIPE_BASE_URL" => Some("http://127.0.0.1:9/".to_string()),
        other => env(other),
    };
    let c = Config::parse(GOOD, &env).unwrap();
    assert_eq!(c.apps[0].base_url, "http://127.0.0.1:9");
}

#[test]
fn errors_name_the_key() {
    let cases = [
        (GOOD.replace("pool_size = 8", "pool_size = 8\ncolour = 1"), "database.colour: unknown field `colour`"),
        (GOOD.replace("app_key = \"stripe_prod\"\nname", "app_key = \"Stripe-Prod\"\nname"), "apps[0].app_key"),
        (GOOD.replace("connector = \"stripe\"", "connector = \"paypal\""), "apps[0].connector"),
        (GOOD.replace("[\"subscription\", \"customer\"]", "[\"invoices\"]"), "apps[0].sync_resources"),
        (GOOD.replace("sync_from =", "trailing_window_hours = 0\nsync_from ="), "apps[0].trailing_window_hours"),
        (GOOD.replace("2024-01-01T00:00:00Z", "yesterday"), "apps[0].sync_from"),
        (GOOD.replace("STRIPE_API_KEY", "MISSING_KEY"), "apps[0].api_key_env: environment variable MISSING_KEY is not set"),
        (GOOD.replace("cron = \"0 */6 * * *\"", "cron = \"often\""), "sync_schedules[0].cron"),
        (GOOD.replace("app_key = \"stripe_prod\"\ncron", "app_key = \"nope\"\ncron"), "sync_schedules[0].app_key"),
        (GOOD.replace("listen = \"127.0.0.1:0\"", "listen = \"here\""), "server.listen"),
        (GOOD.replace("listen = \"127.0.0.1:0\"", "max_connections_per_ip = 0"), "server.max_connections_per_ip: must be positive"),
        (GOOD.replace("listen = \"127.0.0.1:0\"", "max_requests_per_connection = -1"), "server.max_requests_per_connection: must be positive"),
        (GOOD.replace("listen = \"127.0.0.1:0\"", "connection_max_seconds = 0"), "server.connection_max_seconds: must be positive"),
        (GOOD.replace("listen = \"127.0.0.1:0\"", "webhook_body_budget_bytes = 1000"), "server.webhook_body_budget_bytes: must be at least server.max_body_bytes (1048576)"),
        (GOOD.replace("pool_size = 8", "pool_size = \"many\""), "database.pool_size"),
        (format!("{GOOD}\n[[apps]]\napp_key = \"stripe_prod\"\nconnector = \"stripe\"\napi_key_env = \"STRIPE_API_KEY\"\n"), "apps[1].app_key"),
    ];
    for (text, want) in cases {
        let got = error_of(&text);
        assert!(got.starts_with("config error: "), "{got}");
        assert!(got.contains(want), "wanted {want:?} in {got:?}");
        assert!(!got.contains('\n'), "one line: {got:?}");
    }
}

#[test]
fn numbers_past_their_bound_are_refused_naming_the_key() {
    // Each of these starts a daemon that never works: a lease of centuries overflows the
    // timestamps a claim compares it with, a budget of 1e-300 requests a second waits forever.
    let worker = |line: &str| format!("{GOOD}\n[worker]\n{line}\n");
    let cases = [
        (
            worker("lease_seconds = 9223372036854775807"),
            "worker.lease_seconds: must be at most 86400, got 9223372036854775807",
        ),
        (
            worker("concurrency = 100000000"),
            "worker.concurrency: must be at most 1000",
        ),
        (
            worker("poll_interval_ms = 9223372036854775807"),
            "worker.poll_interval_ms: must be at most 3600000",
        ),
        (
            worker("retry_base_ms = 86400000"),
            "worker.retry_base_ms: must be at most 3600000",
        ),
        (
            worker("job_retention_days = 100000"),
            "worker.job_retention_days: must be at most 36500",
        ),
        (
            GOOD.replace("pool_size = 8", "pool_size = 5000"),
            "database.pool_size: must be at most 1000",
        ),
        (
            GOOD.replace(
                "listen = \"127.0.0.1:0\"",
                "shutdown_grace_seconds = 9999999",
            ),
            "server.shutdown_grace_seconds: must be at most 86400",
        ),
        (
            format!("{GOOD}\n[alerts]\nrepeat_after_s = 99999999999\n"),
            "alerts.repeat_after_s: must be at most 2592000",
        ),
        (
            format!("{GOOD}\n[events]\nretention_days = 99999999\n"),
            "events.retention_days: must be at most 36500",
        ),
        (
            format!("{GOOD}\n[webhook_logging]\nretention_days = 0\n"),
            "webhook_logging.retention_days: must be positive",
        ),
        (
            GOOD.replace("sync_from =", "requests_per_second = 1e-300\nsync_from ="),
            "apps[0].requests_per_second: must be between 0.001 and 100000",
        ),
        (
            GOOD.replace("2024-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
            "apps[0].sync_from: \"0001-01-01T00:00:00Z\" is not between 1970 and 2100",
        ),
    ];
    for (text, want) in cases {
        let got = error_of(&text);
        assert!(got.contains(want), "wanted {want:?} in {got:?}");
        assert!(!got.contains('\n'), "one line: {got:?}");
    }
}

#[test]
fn a_short_admin_key_is_refused_naming_its_variable() {
    let with_key = |key: &'static str| {
        move |name: &str| match name {
            "ADMIN_API_KEY" => Some(key.to_string()),
            other => env(other),
        }
    };
    for short in ["k", "123456789012345"] {
        let got = Config::parse(GOOD, &with_key(short))
            .unwrap_err()
            .to_string();
        assert_eq!(
            got,
            format!(
                "config error: server.admin_api_key_env: environment variable ADMIN_API_KEY holds \
                 a key of {} characters; at least 16 are needed",
                short.len()
            )
        );
    }
    Config::parse(GOOD, &with_key("1234567890123456")).expect("16 characters are enough");
    // The second of two keys is checked too.
    let two = GOOD.replace(
        "admin_api_key_env = \"ADMIN_API_KEY\"",
        "admin_api_key_env = [\"ADMIN_API_KEY\", \"ADMIN_API_KEY_NEXT\"]",
    );
    let next = |name: &str| match name {
        "ADMIN_API_KEY_NEXT" => Some("short".to_string()),
        other => env(other),
    };
    let got = Config::parse(&two, &next).unwrap_err().to_string();
    assert!(
        got.contains("ADMIN_API_KEY_NEXT holds a key of 5 characters"),
        "{got}"
    );
}

#[test]
fn missing_database_url_is_named() {
    let env = |name: &str| {
        if name == "DATABASE_URL" {
            None
        } else {
            env(name)
        }
    };
    let got = Config::parse(GOOD, &env).unwrap_err().to_string();
    assert_eq!(
        got,
        "config error: database.url_env: environment variable DATABASE_URL is not set"
    );
}

#[test]
fn cron_days_of_week_follow_standard_cron() {
    // 2026-11-23 is a Monday.
    let monday: chrono::DateTime<chrono::Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
    let next_day = |expr: &str| {
        let s = parse_schedule(expr, None).unwrap();
        s.next_after(&monday).unwrap().format("%a").to_string()
    };
    assert_eq!(next_day("0 0 * * 0"), "Sun");
    assert_eq!(next_day("0 0 * * 7"), "Sun");
    assert_eq!(next_day("0 0 * * 6"), "Sat");
    assert_eq!(next_day("0 0 * * 5-7"), "Fri");
    assert_eq!(next_day("0 0 * * 2,4"), "Tue");
    assert_eq!(next_day("0 0 * * */3"), "Wed");
    assert_eq!(next_day("0 0 * * SUN"), "Sun");
    assert_eq!(next_day("30 0 0 * * 2"), "Tue", "6 fields: seconds first");
    assert!(parse_schedule("0 0 * * 8", None).is_err());
    assert!(parse_schedule("0 0 * *", None).is_err());
    assert!(
        parse_schedule("0 0 0 * * * 2030", None).is_err(),
        "no year field"
    );
}

#[test]
fn day_of_month_and_day_of_week_both_restricted_fire_on_either_as_in_vixie_cron() {
    // 2026-12-01 is a Tuesday: "the 15th, and every Monday" fires on Monday the 7th first.
    let at: chrono::DateTime<chrono::Utc> = "2026-12-01T12:00:00Z".parse().unwrap();
    let s = parse_schedule("0 9 15 * MON", None).unwrap();
    let fires: Vec<String> = std::iter::successors(s.next_after(&at), |t| s.next_after(t))
        .take(4)
        .map(|t| t.format("%a %d").to_string())
        .collect();
    assert_eq!(fires, ["Mon 07", "Mon 14", "Tue 15", "Mon 21"]);
}

#[test]
fn a_schedule_fires_in_its_time_zone() {
    let at: chrono::DateTime<chrono::Utc> = "2026-12-01T12:00:00Z".parse().unwrap();
    // 09:00 in Paris is 08:00 UTC in winter; in New York 14:00 UTC.
    let paris = parse_schedule("0 9 * * *", Some("Europe/Paris")).unwrap();
    assert_eq!(
        paris.next_after(&at).unwrap().to_rfc3339(),
        "2026-12-02T08:00:00+00:00"
    );
    let ny = parse_schedule("0 9 * * *", Some("America/New_York")).unwrap();
    assert_eq!(
        ny.next_after(&at).unwrap().to_rfc3339(),
        "2026-12-01T14:00:00+00:00"
    );
    // Across the spring change (Paris, 29 March 2026: 02:00 becomes 03:00), a time that does
    // not exist that day is not skipped for good.
    let spring: chrono::DateTime<chrono::Utc> = "2026-03-28T12:00:00Z".parse().unwrap();
    let early = parse_schedule("30 2 * * *", Some("Europe/Paris")).unwrap();
    assert!(early.next_after(&spring).is_some());
    assert!(parse_schedule("0 9 * * *", Some("Mars/Olympus_Mons")).is_err());
    let err = Config::parse(
        &GOOD.replace(
            "cron = \"0 */6 * * *\"",
            "cron = \"0 */6 * * *\"\ntimezone = \"Nowhere/Else\"",
        ),
        &env,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("sync_schedules[0].timezone"), "{err}");
}

#[test]
fn request_budgets_default_by_key_and_can_be_set_or_turned_off() {
    let with = |extra: &str| {
        GOOD.replace(
            "sync_from = \"2024-01-01T00:00:00Z\"",
            &format!("sync_from = \"2024-01-01T00:00:00Z\"\n{extra}"),
        )
    };
    let c = Config::parse(GOOD, &env).unwrap();
    assert_eq!(c.apps[0].requests_per_second, Some(25.0), "a test key");
    let live = |name: &str| match name {
        "STRIPE_API_KEY" => Some("rk_live_x".into()),
        other => env(other),
    };
    let c = Config::parse(GOOD, &live).unwrap();
    assert_eq!(c.apps[0].requests_per_second, Some(100.0), "a live key");
    let c = Config::parse(&with("requests_per_second = 40"), &env).unwrap();
    assert_eq!(c.apps[0].requests_per_second, Some(40.0));
    let c = Config::parse(&with("requests_per_second = 2.5"), &env).unwrap();
    assert_eq!(c.apps[0].requests_per_second, Some(2.5));
    let c = Config::parse(&with("requests_per_second = 0"), &env).unwrap();
    assert_eq!(c.apps[0].requests_per_second, None);
    assert!(error_of(&with("requests_per_second = -3")).starts_with(
        "config error: apps[0].requests_per_second: must be between 0.001 and 100000"
    ));
}

#[test]
fn operating_sections_are_checked() {
    let c = Config::parse(GOOD, &env).unwrap();
    assert_eq!(c.circuit_breaker.failure_threshold, 5);
    assert_eq!(c.circuit_breaker.open_for, Duration::from_secs(60));
    assert_eq!(c.events.retention_days, 30);
    assert_eq!(c.alerts.on.len(), 3);
    assert!(c.alerts.slack_webhook_url.is_none());
    for (section, want) in [
        (
            "[alerts]\nslack_webhook_url_env = \"NOPE\"\n",
            "config error: alerts.slack_webhook_url_env: environment variable NOPE is not set",
        ),
        (
            "[alerts]\non = [\"job_failed\", \"disk_full\"]\n",
            "config error: alerts.on[1]: unknown alert \"disk_full\"",
        ),
        (
            "[alerts]\nrepeat_after_s = -1\n",
            "config error: alerts.repeat_after_s: must not be negative",
        ),
        (
            "[circuit_breaker]\nfailure_threshold = 0\n",
            "config error: circuit_breaker.failure_threshold: must be positive",
        ),
        (
            "[circuit_breaker]\nopen_secs = 5\n",
            "config error: circuit_breaker.open_secs: unknown field `open_secs`",
        ),
        (
            "[events]\nretention_days = 0\n",
            "config error: events.retention_days: must be positive",
        ),
    ] {
        let text = format!("{GOOD}\n{section}");
        let got = error_of(&text);
        assert!(got.starts_with(want), "{section}: {got}");
    }
    let slack = |name: &str| match name {
        "SLACK_URL" => Some("https://hooks.slack.com/services/T/B/T0K3Nxyz".into()),
        other => env(other),
    };
    let text =
        format!("{GOOD}\n[alerts]\nslack_webhook_url_env = \"SLACK_URL\"\non = [\"job_failed\"]\n");
    let c = Config::parse(&text, &slack).unwrap();
    assert!(c.alerts.slack_webhook_url.is_some());
    assert_eq!(c.alerts.on, vec![AlertKind::JobFailed]);
    assert!(
        !format!("{c:?}").contains("T0K3Nxyz"),
        "alert URLs never print"
    );
}

#[test]
fn the_environment_overrides_any_key_and_its_errors_name_the_variable() {
    let vars = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let c = Config::parse_overridden(
        GOOD,
        &env,
        vars(&[
            ("SUPASAASY_SERVER__LISTEN", "0.0.0.0:9090"),
            ("SUPASAASY_WORKER__CONCURRENCY", "9"),
            ("SUPASAASY_DATABASE__MIGRATE", "false"),
            ("SUPASAASY_APPS__STRIPE_PROD__REQUESTS_PER_SECOND", "7.5"),
        ])
        .into_iter(),
    )
    .unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:9090");
    assert_eq!(c.worker.concurrency, 9);
    assert!(!c.database.migrate);
    assert_eq!(c.apps[0].requests_per_second, Some(7.5));

    for (pairs, want) in [
        (
            vars(&[("SUPASAASY_WORKER__CONCURRENCY", "many")]),
            "worker.concurrency (SUPASAASY_WORKER__CONCURRENCY)",
        ),
        (
            vars(&[("SUPASAASY_WORKER__CONCURRENCY", "0")]),
            "worker.concurrency (SUPASAASY_WORKER__CONCURRENCY): must be positive",
        ),
        (
            vars(&[("SUPASAASY_SERVER__COLOUR", "red")]),
            "server.colour (SUPASAASY_SERVER__COLOUR): unknown field",
        ),
        (
            vars(&[("SUPASAASY_PALETTE__COLOUR", "red")]),
            "SUPASAASY_PALETTE__COLOUR: names no key",
        ),
        (
            vars(&[("SUPASAASY_APPS__NOPE__BASE_URL", "http://x")]),
            "SUPASAASY_APPS__NOPE__BASE_URL: no app has app_key \"nope\"",
        ),
    ] {
        let got = Config::parse_overridden(GOOD, &env, pairs.into_iter())
            .unwrap_err()
            .to_string();
        assert!(got.contains(want), "wanted {want:?} in {got:?}");
        assert!(!got.contains('\n'), "one line: {got:?}");
    }
}

#[test]
fn the_effective_config_shows_every_key_and_no_secret() {
    let c = Config::parse(GOOD, &env).unwrap();
    let shown = c.effective();
    assert_eq!(shown["worker"]["concurrency"], 4);
    assert_eq!(shown["server"]["max_connections_per_ip"], 64);
    assert_eq!(shown["server"]["max_requests_per_connection"], 1000);
    assert_eq!(shown["server"]["connection_max_seconds"], 600);
    assert_eq!(shown["server"]["webhook_body_budget_bytes"], 64 << 20);
    assert_eq!(
        shown["database"]["url"],
        "localhost:5432/x (sslmode=prefer)"
    );
    assert_eq!(shown["apps"][0]["api_key"], "(set)");
    assert_eq!(shown["apps"][0]["trailing_window_hours"], 168);
    assert_eq!(
        shown["alerts"]["slack_webhook_url"],
        serde_json::Value::Null
    );
    assert!(!shown.to_string().contains("sk_test_x"));
    assert!(!shown.to_string().contains("admin-key-of-sixteen"));
}

const CONNECT: &str = r#"
[database]
url_env = "DATABASE_URL"

[[apps]]
app_key = "platform"
connector = "stripe"
api_key_env = "STRIPE_API_KEY"
sync_resources = ["customer"]

[apps.connect]
enabled = true
accounts = ["acct_b", "acct_a", "acct_b"]
webhook_secret_env = "CONNECT_SECRET"
"#;

#[test]
fn connect_lists_the_accounts_and_takes_its_own_secret() {
    let env = |name: &str| match name {
        "CONNECT_SECRET" => Some("whsec_connect".to_string()),
        other => env(other),
    };
    let c = Config::parse(CONNECT, &env).unwrap();
    let connect = c.apps[0].connect.as_ref().unwrap();
    assert_eq!(
        connect.accounts,
        ConnectAccounts::Only(vec!["acct_a".into(), "acct_b".into()])
    );
    assert!(connect.accounts.includes("acct_b") && !connect.accounts.includes("acct_c"));
    assert_eq!(
        connect.webhook_secret.as_ref().unwrap().expose(),
        "whsec_connect"
    );
    // The accounts are listed by every job of a Connect app: their tasks hang off them.
    assert_eq!(c.apps[0].sync_resources, vec!["customer", "account"]);
    let shown = c.effective();
    assert_eq!(shown["apps"][0]["connect"]["accounts"][1], "acct_b");
    assert_eq!(shown["apps"][0]["connect"]["webhook_secret"], "(set)");
    assert!(!shown.to_string().contains("whsec_connect"));

    let all = CONNECT.replace(r#"["acct_b", "acct_a", "acct_b"]"#, r#""all""#);
    let c = Config::parse(&all, &env).unwrap();
    assert_eq!(
        c.apps[0].connect.as_ref().unwrap().accounts,
        ConnectAccounts::All
    );

    // Without Connect: no accounts resource, and no connect section in effect.
    let off = CONNECT.replace("enabled = true", "enabled = false");
    let c = Config::parse(&off, &env).unwrap();
    assert!(c.apps[0].connect.is_none());
    assert_eq!(c.apps[0].sync_resources, vec!["customer"]);
    let c = Config::parse(GOOD, &super::tests::env).unwrap();
    assert!(!c.apps[0].sync_resources.iter().any(|r| r == "account"));
}

#[test]
fn connect_errors_name_the_key() {
    let env = |name: &str| match name {
        "CONNECT_SECRET" => Some("whsec_connect".to_string()),
        other => env(other),
    };
    let intercom = CONNECT
        .replace("connector = \"stripe\"", "connector = \"intercom\"")
        .replace("[\"customer\"]", "[\"contact\"]");
    let cases = [
        (
            CONNECT.replace("\"acct_a\"", "\"cus_a\""),
            "apps[0].connect.accounts: \"cus_a\" is not a Stripe account id",
        ),
        (
            CONNECT.replace(r#"["acct_b", "acct_a", "acct_b"]"#, r#""some""#),
            "apps[0].connect.accounts",
        ),
        (
            CONNECT.replace("CONNECT_SECRET", "MISSING_SECRET"),
            "apps[0].connect.webhook_secret_env: environment variable MISSING_SECRET is not set",
        ),
        (
            CONNECT.replace("enabled = true", "enabled = true\ncolour = 1"),
            "apps[0].connect.colour: unknown field",
        ),
        (intercom, "apps[0].connect.enabled"),
        (
            CONNECT
                .replace("enabled = true", "enabled = false")
                .replace("[\"customer\"]", "[\"customer\", \"account\"]"),
            "apps[0].sync_resources",
        ),
    ];
    for (text, want) in cases {
        let got = Config::parse(&text, &env).unwrap_err().to_string();
        assert!(got.contains(want), "wanted {want:?} in {got:?}");
        assert!(!got.contains('\n'), "one line: {got:?}");
    }
}
