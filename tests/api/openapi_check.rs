//! A checker for the subset of OpenAPI 3.0 that `src/http/openapi.json` uses: schemas (`type`
//! with integer apart from number, `nullable`, `required`, `properties`, `additionalProperties`,
//! `items`, `enum`, `oneOf`/`anyOf`/`allOf`, `minimum`/`maximum`, `minLength`, the formats
//! `date-time`, `uuid`, `int32` and `int64`) and `$ref`s into the same document.
//!
//! A keyword it does not know is an error rather than ignored, so the description cannot say
//! something this checker silently skips.

use serde_json::Value;

/// The schema keywords understood; `description`, `default` and `example` only annotate.
const KEYWORDS: [&str; 18] = [
    "$ref",
    "type",
    "nullable",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "enum",
    "oneOf",
    "anyOf",
    "allOf",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "description",
    "default",
    "example",
];

/// What `$ref` (`#/components/...`) points at in `doc`.
pub fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    pointer
        .starts_with("/components/")
        .then(|| doc.pointer(pointer))
        .flatten()
}

/// `node` itself, or what its `$ref` points at (responses and parameters may be references).
pub fn deref<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => node,
    }
}

/// Every `$ref` in `doc` that points at nothing.
pub fn dangling_refs(doc: &Value) -> Vec<String> {
    fn walk(doc: &Value, node: &Value, out: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    if !r.starts_with("#/components/") || resolve(doc, r).is_none() {
                        out.push(r.to_string());
                    }
                }
                map.values().for_each(|v| walk(doc, v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(doc, v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, doc, &mut out);
    out
}

/// Where `value` breaks `schema` (empty when it conforms), each as `$.path: what`.
pub fn validate(doc: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(doc, schema, value, "$", &mut errors);
    errors
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        return errors.push(format!("{at}: the schema is not an object: {schema}"));
    };
    for key in s.keys().filter(|k| !KEYWORDS.contains(&k.as_str())) {
        errors.push(format!("{at}: schema keyword {key:?} is not supported"));
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        if s.len() > 1 {
            errors.push(format!(
                "{at}: keywords beside $ref are ignored in OpenAPI 3.0"
            ));
        }
        match resolve(doc, r) {
            Some(target) => check(doc, target, value, at, errors),
            None => errors.push(format!("{at}: dangling $ref {r}")),
        }
        return;
    }
    if value.is_null() {
        if s.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(format!("{at}: null where the schema is not nullable"));
        }
        return;
    }
    if let Some(t) = s.get("type").and_then(Value::as_str) {
        let ok = match t {
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" | "boolean" | "array" | "object" => kind(value) == t,
            other => {
                return errors.push(format!("{at}: unknown type {other:?}"));
            }
        };
        if !ok {
            return errors.push(format!("{at}: expected {t}, got {} {value}", kind(value)));
        }
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
    }
    if let (Some(format), Some(text)) = (s.get("format").and_then(Value::as_str), value.as_str()) {
        let ok = match format {
            "date-time" => chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            "uuid" => uuid::Uuid::try_parse(text).is_ok(),
            other => {
                errors.push(format!(
                    "{at}: format {other:?} on a string is not supported"
                ));
                true
            }
        };
        if !ok {
            errors.push(format!("{at}: {text:?} is not a {format}"));
        }
    }
    if let (Some("int32"), Some(n)) = (s.get("format").and_then(Value::as_str), value.as_i64()) {
        if i32::try_from(n).is_err() {
            errors.push(format!("{at}: {n} does not fit int32"));
        }
    }
    if let Some(n) = value.as_f64() {
        if s.get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            errors.push(format!("{at}: {n} is below the minimum"));
        }
        if s.get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            errors.push(format!("{at}: {n} is above the maximum"));
        }
    }
    if let (Some(min), Some(text)) = (s.get("minLength").and_then(Value::as_u64), value.as_str()) {
        if (text.chars().count() as u64) < min {
            errors.push(format!("{at}: {text:?} is shorter than {min}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = s.get("properties").and_then(Value::as_object);
        for name in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                errors.push(format!("{at}: the required field {name:?} is missing"));
            }
        }
        for (name, v) in object {
            let here = format!("{at}.{name}");
            match (
                properties.and_then(|p| p.get(name)),
                s.get("additionalProperties"),
            ) {
                (Some(p), _) => check(doc, p, v, &here, errors),
                (None, Some(Value::Bool(false))) => {
                    errors.push(format!("{here}: a field the description does not know"))
                }
                (None, Some(extra @ Value::Object(_))) => check(doc, extra, v, &here, errors),
                (None, _) => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (s.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            check(doc, items, v, &format!("{at}[{i}]"), errors);
        }
    }
    let matching = |key: &str| -> Option<(usize, usize)> {
        let options = s.get(key)?.as_array()?;
        let ok = options
            .iter()
            .filter(|o| validate(doc, o, value).is_empty())
            .count();
        Some((ok, options.len()))
    };
    if let Some((ok, _)) = matching("oneOf").filter(|(ok, _)| *ok != 1) {
        errors.push(format!(
            "{at}: {value} matches {ok} of oneOf, not exactly one"
        ));
    }
    if let Some((0, _)) = matching("anyOf") {
        errors.push(format!("{at}: {value} matches none of anyOf"));
    }
    if let Some((ok, all)) = matching("allOf").filter(|(ok, all)| ok != all) {
        errors.push(format!("{at}: {value} matches {ok} of the {all} of allOf"));
    }
}

#[test]
fn the_checker_catches_drift() {
    let doc = serde_json::json!({"components": {"schemas": {
        "Thing": {
            "type": "object",
            "required": ["id", "at"],
            "additionalProperties": false,
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "at": {"type": "string", "format": "date-time", "nullable": true},
                "kind": {"type": "string", "enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"type": "string", "minLength": 1}},
                "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
                "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
            }
        },
        "Odd": {"type": "string", "pattern": "^a$"},
    }}});
    let thing = serde_json::json!({"$ref": "#/components/schemas/Thing"});
    let ok = serde_json::json!({"id": 1, "at": null, "kind": "a", "tags": ["x"],
        "counts": {"x": 2}, "either": 3});
    assert_eq!(validate(&doc, &thing, &ok), Vec::<String>::new());
    let at = serde_json::json!({"id": 1, "at": "2026-01-31T00:00:00.000Z"});
    assert_eq!(validate(&doc, &thing, &at), Vec::<String>::new());
    let bad = [
        serde_json::json!({"id": 1.5, "at": null}),
        serde_json::json!({"id": 0, "at": null}),
        serde_json::json!({"id": 1}),
        serde_json::json!({"id": 1, "at": "yesterday"}),
        serde_json::json!({"id": 1, "at": null, "kind": "c"}),
        serde_json::json!({"id": 1, "at": null, "extra": true}),
        serde_json::json!({"id": 1, "at": null, "tags": [""]}),
        serde_json::json!({"id": 1, "at": null, "counts": {"x": "2"}}),
        serde_json::json!({"id": 1, "at": null, "either": true}),
        serde_json::json!({"id": null, "at": null}),
        serde_json::json!([]),
    ];
    for value in bad {
        assert!(!validate(&doc, &thing, &value).is_empty(), "{value} passed");
    }
    let odd = serde_json::json!({"$ref": "#/components/schemas/Odd"});
    assert!(!validate(&doc, &odd, &serde_json::json!("a")).is_empty());
    let dangling = serde_json::json!({"$ref": "#/components/schemas/Nope"});
    assert!(!validate(&doc, &dangling, &serde_json::json!(1)).is_empty());
    assert_eq!(dangling_refs(&doc), Vec::<String>::new());
}
