//! Every key of the file from the environment: `SUPASAASY_<SECTION>__<KEY>` sets `key` of
//! `[section]` (`SUPASAASY_SERVER__LISTEN`, `SUPASAASY_WORKER__CONCURRENCY`), and
//! `SUPASAASY_APPS__<APP_KEY>__<KEY>` a key of the app with that `app_key`
//! (`SUPASAASY_APPS__STRIPE_PROD__BASE_URL`). The environment wins over the file.
//!
//! A value is read as a TOML value when it is one (`8`, `true`, `["customer", "invoice"]`), as a
//! string otherwise (`127.0.0.1:8080`). Names are case-insensitive. Variables without `__`
//! (`SUPASAASY_CONFIG`, `SUPASAASY_LOG_FORMAT`) are not overrides. An override naming no section or
//! app stops start-up naming the variable; a key the section does not have, or a value of the wrong
//! type, is refused as in the file, the variable named beside the key.

use toml::{Table, Value};

use super::ConfigError;

/// The prefix of every override.
const PREFIX: &str = "SUPASAASY_";

/// The sections an override may name (the file's tables, `apps` apart).
const SECTIONS: [&str; 7] = [
    "database",
    "server",
    "worker",
    "webhook_logging",
    "alerts",
    "circuit_breaker",
    "events",
];

/// One override applied: the variable and the key it set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Override {
    /// The variable's name.
    pub var: String,
    /// The key as a config error names it (`server.listen`, `apps[0].base_url`).
    pub key: String,
}

/// Applies the overrides among `vars` to the parsed file, in name order; the ones applied.
///
/// # Errors
///
/// A [`ConfigError`] naming a variable that names no section or app.
pub(super) fn apply(
    doc: &mut Table,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Vec<Override>, ConfigError> {
    let mut vars: Vec<(String, String)> = vars
        .filter(|(name, _)| {
            name.len() > PREFIX.len()
                && name[..PREFIX.len()].eq_ignore_ascii_case(PREFIX)
                && name.contains("__")
        })
        .collect();
    vars.sort();
    let mut applied = Vec::new();
    for (var, raw) in vars {
        let parts: Vec<String> = var[PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        let value = parse_value(&raw);
        let key = match parts.as_slice() {
            [section, key] if SECTIONS.contains(&section.as_str()) && !key.is_empty() => {
                let table = doc
                    .entry(section.clone())
                    .or_insert_with(|| Value::Table(Table::new()));
                let Value::Table(table) = table else {
                    return Err(ConfigError::new(section.clone(), "is not a table"));
                };
                table.insert(key.clone(), value);
                format!("{section}.{key}")
            }
            [apps, app_key, key] if apps == "apps" && !key.is_empty() => {
                let Some((i, app)) = find_app(doc, app_key) else {
                    return Err(ConfigError::new(
                        var.clone(),
                        format!("no app has app_key {app_key:?}"),
                    ));
                };
                app.insert(key.clone(), value);
                format!("apps[{i}].{key}")
            }
            _ => {
                return Err(ConfigError::new(
                    var.clone(),
                    format!(
                        "names no key: use {PREFIX}<SECTION>__<KEY> with a section of {} or \
                         {PREFIX}APPS__<APP_KEY>__<KEY>",
                        SECTIONS.join(", ")
                    ),
                ))
            }
        };
        applied.push(Override { var, key });
    }
    Ok(applied)
}

/// The app table with this `app_key`, and its index.
fn find_app<'a>(doc: &'a mut Table, app_key: &str) -> Option<(usize, &'a mut Table)> {
    let Some(Value::Array(apps)) = doc.get_mut("apps") else {
        return None;
    };
    apps.iter_mut().enumerate().find_map(|(i, app)| match app {
        Value::Table(t) if t.get("app_key").and_then(Value::as_str) == Some(app_key) => {
            Some((i, t))
        }
        _ => None,
    })
}

/// A variable's value as TOML when it is a number, a boolean or an array, else as a string.
fn parse_value(raw: &str) -> Value {
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => match t.remove("v") {
            Some(Value::Datetime(_)) | None => Value::String(raw.to_owned()),
            Some(v) => v,
        },
        Err(_) => Value::String(raw.to_owned()),
    }
}

/// The same error, its key followed by the variable that set it when an override did.
pub(super) fn name_the_var(mut e: ConfigError, applied: &[Override]) -> ConfigError {
    if let Some(o) = applied.iter().find(|o| o.key == e.key) {
        e.key = format!("{} ({})", e.key, o.var);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn sections_and_apps_are_set_the_environment_winning() {
        let mut doc: Table =
            "[server]\nlisten = \"127.0.0.1:1\"\n[[apps]]\napp_key = \"stripe_prod\"\n"
                .parse()
                .unwrap();
        let applied = apply(
            &mut doc,
            vars(&[
                ("SUPASAASY_SERVER__LISTEN", "0.0.0.0:8080"),
                ("SUPASAASY_WORKER__CONCURRENCY", "8"),
                ("SUPASAASY_DATABASE__MIGRATE", "false"),
                (
                    "supasaasy_apps__stripe_prod__sync_resources",
                    "[\"customer\"]",
                ),
                (
                    "SUPASAASY_APPS__STRIPE_PROD__SYNC_FROM",
                    "2024-01-01T00:00:00Z",
                ),
                ("SUPASAASY_CONFIG", "ignored.toml"),
                ("OTHER__VAR", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(doc["server"]["listen"].as_str(), Some("0.0.0.0:8080"));
        assert_eq!(doc["worker"]["concurrency"].as_integer(), Some(8));
        assert_eq!(doc["database"]["migrate"].as_bool(), Some(false));
        let app = &doc["apps"][0];
        assert_eq!(app["sync_resources"][0].as_str(), Some("customer"));
        assert_eq!(app["sync_from"].as_str(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(applied.len(), 5);
        assert!(applied.contains(&Override {
            var: "SUPASAASY_WORKER__CONCURRENCY".into(),
            key: "worker.concurrency".into()
        }));
    }

    #[test]
    fn an_override_naming_no_key_is_refused_naming_the_variable() {
        for name in [
            "SUPASAASY_NOPE__KEY",
            "SUPASAASY_SERVER__",
            "SUPASAASY_APPS__MISSING__BASE_URL",
            "SUPASAASY_SERVER__LISTEN__X",
        ] {
            let mut doc = Table::new();
            let err = apply(&mut doc, vars(&[(name, "1")])).unwrap_err();
            assert!(err.key == name, "{name}: {err}");
        }
    }
}
