//! `GET /openapi.json`: the OpenAPI 3.0 description of every route.
//!
//! The description is hand-written in `openapi.json` beside this file and served as written, but
//! for the enums that follow the list of providers: `"$providers"` becomes the providers' names
//! and `"$services"` the integration events' services.
//! The integration test `tests/api/openapi.rs` keeps it honest: it calls every route, checks each
//! answer's status, headers and body against it, and checks that the router and the description
//! list the same routes.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::util::Resp;

use std::sync::LazyLock;

use crate::providers;

/// The description, as written.
const DESCRIPTION: &str = include_str!("openapi.json");

/// The description as served, the providers' enums filled in.
pub fn description() -> &'static str {
    static SERVED: LazyLock<String> = LazyLock::new(|| {
        let quoted = |names: Vec<&str>| {
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        DESCRIPTION
            .replace("\"$providers\"", &quoted(providers::names()))
            .replace("\"$services\"", &quoted(providers::services()))
    });
    &SERVED
}

/// The description.
pub fn serve() -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from_static(description().as_bytes())));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_is_openapi_3_json_of_this_version() {
        let doc: serde_json::Value =
            serde_json::from_str(description()).expect("openapi.json is valid JSON");
        assert_eq!(
            doc["components"]["schemas"]["Service"]["enum"],
            serde_json::json!(["stripe", "intercom", "slack", "teams", "supasaasy"])
        );
        assert_eq!(doc["openapi"], "3.0.3");
        assert_eq!(
            doc["info"]["version"],
            env!("CARGO_PKG_VERSION"),
            "bump info.version in openapi.json with the crate"
        );
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
    }
}
